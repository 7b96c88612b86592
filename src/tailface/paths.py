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
