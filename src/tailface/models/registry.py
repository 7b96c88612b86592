"""Backbone registry with one uniform constructor: ``create_model(name, input_size, embedding_size)``.

A backbone maps a ``Bx3xHxW`` float batch to ``BxE`` features (not normalised).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    default_input_size: int
    description: str


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, default_input_size: int, description: str = ""):
    """Decorator: ``builder(input_size, embedding_size, **kwargs) -> nn.Module``."""

    def wrap(builder):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = ModelSpec(name, builder, default_input_size, description or (builder.__doc__ or "").strip())
        return builder

    return wrap


def create_model(name: str, input_size: int | None = None, embedding_size: int = 512, **kwargs) -> nn.Module:
    spec = get_spec(name)
    return spec.builder(input_size=input_size or spec.default_input_size, embedding_size=embedding_size, **kwargs)


def get_spec(name: str) -> ModelSpec:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def default_input_size(name: str) -> int:
    return get_spec(name).default_input_size


def list_models() -> list[str]:
    return sorted(_MODELS)


def resolve_image_size(model_name: str | None, input_size=None, override=None) -> tuple[int, int]:
    """The one rule for the (height, width) a model is trained and evaluated at: ``override``
    (``train.image_size``, or the size a checkpoint recorded), else the model's ``input_size``
    argument, else the registry's default for ``model_name`` (112 for a model that is not
    registered by name). An int means a square."""
    size = override or input_size or (default_input_size(model_name) if model_name else 112)
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))
