"""Helpers shared by the backbones."""

from __future__ import annotations

from tailface.errors import ConfigError


def feature_side(model_name: str, input_size: int, stride: int) -> int:
    """Side of the last feature map of a network with total ``stride``; the input must be a
    multiple of it."""
    if int(input_size) != input_size or input_size < stride or input_size % stride:
        raise ConfigError(f"model {model_name!r}: input_size must be a positive multiple of {stride}, "
                          f"got {input_size}")
    return int(input_size) // stride


def check_embedding_size(model_name: str, embedding_size: int) -> int:
    if int(embedding_size) != embedding_size or embedding_size < 1:
        raise ConfigError(f"model {model_name!r}: embedding_size must be a positive int, got {embedding_size}")
    return int(embedding_size)
