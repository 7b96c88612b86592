"""Where the real face data lives: ``$TAILFACE_FACES`` or ``../shared/data/faces`` beside the repo;
where ``tailface prepare`` writes the aligned sets: ``$TAILFACE_DATA`` or ``./data``."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

_REPO_ROOT = Path(__file__).resolve().parents[2]


def faces_root() -> Path:
    """Folder of the real face sets (may not exist; callers check and explain)."""
    env = os.environ.get("TAILFACE_FACES")
    if env:
        return Path(env)
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = base.parent / "shared" / "data" / "faces"
        if candidate.is_dir():
            return candidate
    return _REPO_ROOT.parent / "shared" / "data" / "faces"


PREPARED_NAMES = ("lfw", "celeba-aligned", "celeba-wild", "celeba-train")


def prepared_root() -> Path:
    """Where ``tailface prepare`` writes aligned real datasets: ``$TAILFACE_DATA`` or ``./data``.

    Each prepared set is a folder ``<root>/<name>/`` holding ``train.rec`` and ``train.idx``
    (names in :data:`PREPARED_NAMES`)."""
    return Path(os.environ.get("TAILFACE_DATA", Path.cwd() / "data"))


def prepared_path(name: str) -> Path:
    return prepared_root() / name


def prepared_name(spec: str) -> str | None:
    """``NAME`` when ``spec`` is the relative path ``data/NAME`` of a prepared set (``NAME`` in
    :data:`PREPARED_NAMES`, as the shipped configs write it), else None."""
    parts = PurePosixPath(spec).parts
    return parts[1] if len(parts) == 2 and parts[0] == "data" and parts[1] in PREPARED_NAMES else None


def resolve_prepared_spec(spec: str) -> str:
    """A shipped config's ``data/NAME`` (:func:`prepared_name`) -> where ``tailface prepare NAME``
    writes it, ``$TAILFACE_DATA/NAME``; unchanged without ``$TAILFACE_DATA`` (``./data/NAME`` is then
    the same place) and for any other spec."""
    name = prepared_name(spec)
    return spec if name is None or not os.environ.get("TAILFACE_DATA") else str(prepared_path(name))
