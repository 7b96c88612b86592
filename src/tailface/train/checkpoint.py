"""Checkpoints: atomic writes, loading with clear errors, rebuilding the backbone.

A checkpoint is a ``torch.save`` dict with at least ``model`` (state dict) and ``meta``; ``meta``
holds ``model_spec = {"name": ..., "kwargs": {...}}`` so that :func:`load_model` can call
``create_model(name, **kwargs)``. Models built with :func:`build_model` carry their spec in the
attribute ``tailface_spec``; :func:`tailface.train.fit` reads it from there (or from its
``model_spec`` argument).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from tailface.errors import DataError

SPEC_ATTR = "tailface_spec"


def build_model(name: str, **kwargs) -> nn.Module:
    """``create_model(name, **kwargs)`` that remembers how it was built (for checkpoints)."""
    from tailface.models import create_model

    model = create_model(name, **kwargs)
    setattr(model, SPEC_ATTR, {"name": name, "kwargs": dict(kwargs)})
    return model


def build_head(name: str, embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    from tailface.heads import create_head

    head = create_head(name, embedding_size, num_classes, **kwargs)
    setattr(head, SPEC_ATTR, {"name": name, "embedding_size": embedding_size,
                              "num_classes": num_classes, "kwargs": dict(kwargs)})
    return head


def spec_of(module: nn.Module) -> dict | None:
    return getattr(module, SPEC_ATTR, None)


def save_atomic(obj, path: str | Path) -> Path:
    """``torch.save`` to ``path.tmp`` then ``os.replace``: a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The checkpoint dict; :class:`DataError` naming the file when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise DataError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise DataError(f"{path}: not a tailface checkpoint (expected a dict with 'model' and 'meta')")
    return ckpt


def load_model(path: str | Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the backbone of a checkpoint (in eval mode) -> ``(model, meta)``."""
    ckpt = load_checkpoint(path, map_location)
    meta = ckpt["meta"]
    spec = meta.get("model_spec")
    if not spec:
        raise DataError(f"{path}: checkpoint has no model_spec; cannot rebuild the backbone")
    try:
        model = build_model(spec["name"], **spec.get("kwargs", {}))
        model.load_state_dict(ckpt["model"])
    except (ValueError, RuntimeError, KeyError) as exc:
        raise DataError(f"{path}: cannot rebuild model {spec.get('name')!r}: {exc}") from None
    return model.eval(), meta


def checkpoint_image_size(meta: dict) -> tuple[int, int]:
    """The (height, width) a checkpoint's model was trained at (and is evaluated at)."""
    from tailface.models import resolve_image_size

    spec = meta.get("model_spec") or {}
    return resolve_image_size(spec.get("name"), spec.get("kwargs", {}).get("input_size"), meta.get("image_size"))


def load_head(path: str | Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the classification head of a checkpoint -> ``(head, meta)``."""
    ckpt = load_checkpoint(path, map_location)
    meta = ckpt["meta"]
    spec = meta.get("head_spec")
    if not spec or "head" not in ckpt:
        raise DataError(f"{path}: checkpoint has no head (head_spec/head missing)")
    try:
        head = build_head(spec["name"], spec["embedding_size"], spec["num_classes"], **spec.get("kwargs", {}))
        head.load_state_dict(ckpt["head"])
    except (ValueError, RuntimeError, KeyError) as exc:
        raise DataError(f"{path}: cannot rebuild head {spec.get('name')!r}: {exc}") from None
    return head, meta
