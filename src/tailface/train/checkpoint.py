"""Checkpoints: atomic writes, loading with clear errors, rebuilding the backbone.

A checkpoint is a ``torch.save`` dict with at least ``model`` (state dict) and ``meta``; ``meta``
holds ``model_spec = {"name": ..., "kwargs": {...}}`` so that :func:`load_model` can call
``create_model(name, **kwargs)``. Models built with :func:`build_model` carry their spec in the
attribute ``tailface_spec``; :func:`tailface.train.fit` reads it from there (or from its
``model_spec`` argument). ``meta["alignment_template"]`` names the alignment template
(:mod:`tailface.data.templates`) of the training pack (:func:`template_meta`, from the pack's
``alignment.json``); absent when the training data records none (synthetic faces, packs written
before issue 23): :func:`checkpoint_template` is then None.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import tailface
from tailface.atomic import atomic_open
from tailface.data.alignment_record import faceset_alignment
from tailface.data.faceset import FaceSet
from tailface.data.label_space import ClassStats
from tailface.errors import DataError
from tailface.heads import create_head
from tailface.heads.base import needs_class_stats
from tailface.models import create_model, resolve_image_size

try:
    from numpy._core.multiarray import _reconstruct  # numpy 2
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

SPEC_ATTR = "tailface_spec"
TEMPLATE_KEY = "alignment_template"


def build_model(name: str, **kwargs) -> nn.Module:
    """``create_model(name, **kwargs)`` that remembers how it was built (for checkpoints)."""
    model = create_model(name, **kwargs)
    setattr(model, SPEC_ATTR, {"name": name, "kwargs": dict(kwargs)})
    return model


def head_spec(name: str, embedding_size: int, num_classes: int, kwargs: dict,
              class_stats: ClassStats | None = None) -> dict:
    """The spec a checkpoint records to rebuild a head: ``name``, ``embedding_size``,
    ``num_classes``, ``kwargs`` and, for a head registered with ``needs_class_stats`` only,
    ``class_stats`` (:meth:`ClassStats.to_dict`, plain types)."""
    spec = {"name": name, "embedding_size": embedding_size, "num_classes": num_classes, "kwargs": dict(kwargs)}
    if class_stats is not None and needs_class_stats(name):
        spec["class_stats"] = class_stats.to_dict()
    return spec


def build_head(name: str, embedding_size: int, num_classes: int, class_stats: ClassStats | None = None,
               **kwargs) -> nn.Module:
    """``create_head(name, embedding_size, num_classes, class_stats, **kwargs)`` that remembers
    how it was built (:func:`head_spec`)."""
    head = create_head(name, embedding_size, num_classes, class_stats=class_stats, **kwargs)
    setattr(head, SPEC_ATTR, head_spec(name, embedding_size, num_classes, kwargs, class_stats))
    return head


def spec_of(module: nn.Module) -> dict | None:
    return getattr(module, SPEC_ATTR, None)


def save_atomic(obj, path: str | Path) -> Path:
    """``torch.save`` to ``path.tmp``, fsync, then ``os.replace`` (:mod:`tailface.atomic`): a crash
    leaves the old file intact; a full disk raises :class:`~tailface.errors.OutputError` saying so."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return path


def _numpy_rng_globals() -> list:
    """Exactly the numpy globals that a pickled ``np.random.get_state()`` needs (checkpoints of
    tailface <= 0.1.0 stored it so), under numpy 2's and numpy 1's module names."""
    dtype_class = type(np.dtype(np.uint32))
    return [np.ndarray, np.dtype, dtype_class, _reconstruct,
            (_reconstruct, "numpy.core.multiarray._reconstruct"),
            (_reconstruct, "numpy._core.multiarray._reconstruct"),
            (dtype_class, f"numpy.dtypes.{dtype_class.__name__}")]


def _unsupported_global(exc: Exception) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return found.group(1) if found else type(exc).__name__


def _torch_load(path: Path, map_location):
    """``torch.load(weights_only=True)``; a legacy checkpoint whose only non-plain content is a
    numpy RNG state loads with exactly those numpy globals allowed; anything else is refused."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as first:
        if "numpy" not in _unsupported_global(first):
            raise DataError(f"{path}: refused: the checkpoint holds a non-plain object "
                            f"({_unsupported_global(first)}); tailface loads checkpoints with "
                            f"torch.load(weights_only=True) and never runs code from a file") from None
    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: refused: the checkpoint holds a non-plain object ({_unsupported_global(exc)}); "
                        f"tailface loads checkpoints with torch.load(weights_only=True) and never runs code "
                        f"from a file") from None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(text))[:3])


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The checkpoint dict; :class:`DataError` naming the file when missing, unreadable, holding
    anything but tensors and plain values, or written by a newer tailface."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        ckpt = _torch_load(path, map_location)
    except DataError:
        raise
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        first = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else ""
        raise DataError(f"{path}: cannot read checkpoint, truncated or not a torch file ({type(exc).__name__}: "
                        f"{first})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise DataError(f"{path}: not a tailface checkpoint (expected a dict with 'model' and 'meta')")
    written_by = ckpt["meta"].get("tailface_version") if isinstance(ckpt["meta"], dict) else None
    if written_by and _version_tuple(written_by) > _version_tuple(tailface.__version__):
        raise DataError(f"{path}: written by tailface {written_by}, newer than this tailface "
                        f"{tailface.__version__}; upgrade tailface to read it")
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
    spec = meta.get("model_spec") or {}
    return resolve_image_size(spec.get("name"), spec.get("kwargs", {}).get("input_size"), meta.get("image_size"))


def template_meta(faceset: FaceSet) -> dict:
    """``{"alignment_template": NAME}`` for the checkpoint of a model trained on ``faceset`` (the
    template its pack records), ``{}`` when it records none."""
    record = faceset_alignment(faceset)
    return {} if record is None else {TEMPLATE_KEY: record["template"]}


def checkpoint_template(meta: dict) -> str | None:
    """The alignment template a checkpoint's model was trained on, None when not recorded."""
    value = meta.get(TEMPLATE_KEY)
    return str(value) if value else None


def load_head(path: str | Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the classification head of a checkpoint -> ``(head, meta)``."""
    ckpt = load_checkpoint(path, map_location)
    meta = ckpt["meta"]
    spec = meta.get("head_spec")
    if not spec or "head" not in ckpt:
        raise DataError(f"{path}: checkpoint has no head (head_spec/head missing)")
    try:
        stats = ClassStats.from_dict(spec["class_stats"]) if "class_stats" in spec else None  # (older: none)
        head = build_head(spec["name"], spec["embedding_size"], spec["num_classes"], class_stats=stats,
                          **spec.get("kwargs", {}))
        head.load_state_dict(ckpt["head"])
    except (ValueError, RuntimeError, KeyError) as exc:
        raise DataError(f"{path}: cannot rebuild head {spec.get('name')!r}: {exc}") from None
    return head, meta
