"""Atomic outputs: every file a later step reads is written to a temporary file beside it, flushed,
fsynced and renamed over the target (``os.replace``), so a reader sees the previous version or the
complete new one, never half a file; a kill at any point leaves at most a stale ``*.tmp*`` file,
which the next write replaces.

A write that fails (a full disk: ``ENOSPC``; no permission) removes its temporary file and raises
:class:`tailface.errors.OutputError` naming the file and saying that the previous version is kept.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tailface import faults
from tailface.errors import OutputError


def tmp_path_for(path: Path, suffix: str = "") -> Path:
    """``path.tmp`` (+ ``suffix``, e.g. ``.npz`` for writers that insist on an extension)."""
    return path.with_name(path.name + ".tmp" + suffix)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory
    finally:
        os.close(fd)


def _failed(path: Path, exc: OSError) -> OutputError:
    kept = f"the previous {path.name} is kept unchanged" if path.exists() else f"no {path.name} was written"
    reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
    return OutputError(f"{path}: cannot write ({reason}); {kept}; free space and rerun the same command to "
                       f"continue")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields the temporary path to write; on success it is fsynced and renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path, suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        faults.point(f"tmp-written.{path.name}")
        os.replace(tmp, path)
    except OSError as exc:
        raise _failed(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kw) -> Iterator[IO]:
    """``open(tmp, mode)`` whose file replaces ``path`` when the block ends without an exception."""
    with atomic_path(path) as tmp, open(tmp, mode, **kw) as f:
        yield f
        f.flush()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)
