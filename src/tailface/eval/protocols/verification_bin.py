"""Protocol family ``bin:PATH`` (or any name ending in ``.bin``): 10-fold accuracy on an
InsightFace verification .bin (:mod:`tailface.eval.verification_bin`).

``tailface eval MODEL --protocols lfw,bin:data/lfw.bin,data/cfp_fp.bin`` and ``eval.protocols:
[blufr, data/agedb_30.bin]`` in a config name them; the metrics key is the name as written with
``bin:`` in front (``bin:data/lfw.bin``). Each file is its own evaluation set (images decoded in
file order at the model's input size; features are not cached)."""

from __future__ import annotations

import functools

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.verification_bin import BinFaceSet, read_bin
from tailface.eval.protocols.registry import (
    EvalOptions,
    EvalSet,
    Features,
    Protocol,
    get_eval_set,
    register_eval_set,
    register_protocol_family,
)
from tailface.eval.verification_bin import evaluate_bin

PREFIX = "bin:"


def matches(name: str) -> bool:
    """``bin:PATH`` or ``PATH.bin`` (not a ``verification:DIR`` suite whose folder ends in .bin)."""
    return name.startswith(PREFIX) or (name.lower().endswith(".bin") and not name.startswith("verification:"))


def bin_path(name: str) -> str:
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


_ISSAME: dict[str, np.ndarray] = {}  # path -> issame of the .bin last opened


def open_bin(path: str) -> FaceSet:
    vbin = read_bin(path)
    _ISSAME[path] = vbin.issame
    return BinFaceSet(vbin)


def evaluate(path: str, features: Features, options: EvalOptions) -> dict:
    issame = _ISSAME[path] if path in _ISSAME else read_bin(path).issame
    return {**evaluate_bin(features.features, issame, source=features.source), "file": path}


def summary(m: dict) -> list[tuple[str, str]]:
    return [(f"10-fold accuracy ({m['pairs']} pairs)",
             f"{100 * m['accuracy_mean']:.2f} +- {100 * m['accuracy_std']:.2f}")]


def make(name: str) -> Protocol:
    path = bin_path(name)
    set_name = PREFIX + path
    try:
        get_eval_set(set_name)
    except KeyError:
        register_eval_set(EvalSet(set_name, lambda options, size: open_bin(path), pack=lambda options: path))
    return Protocol(set_name, set_name, functools.partial(evaluate, path), summary)


register_protocol_family(matches, make, "bin:PATH or PATH.bin (an InsightFace verification .bin)")
