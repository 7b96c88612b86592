"""Where the real face data lives: ``$TAILFACE_FACES`` or ``../shared/data/faces`` beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

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
