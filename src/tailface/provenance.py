"""What a run's results depend on, recorded beside them (``OUT/environment.json``), and the guard
that keeps one output folder to one experiment.

A rerun is bit-identical (tested on CPU) only when all of these match: the configuration
(``config.yaml``), the torch build (``torch``), the CPU instruction set torch dispatches to
(``cpu_capability``: AVX2 and AVX512 kernels round differently), the number of intra-op threads
(``threads``: reductions are split per thread), numpy and faiss versions (k-means, search), the
device, and the training data (``data``: sha256 of the .rec/.idx or list file; for a folder, of its
sorted file list with sizes). docs/training.md, "Determinism", says the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np
import torch
import yaml

import tailface
from tailface.atomic import write_text
from tailface.errors import ConfigError
from tailface.locks import LOCK_NAME

IGNORED_KEYS = ("num_workers", "progress", "tensorboard", "log_every")  # do not change any result


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256_listing(folder: Path) -> str:
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            h.update(f"{path.relative_to(folder).as_posix()}\t{path.stat().st_size}\n".encode())
    return h.hexdigest()


def data_fingerprint(spec: str, previous: dict | None = None) -> dict:
    """``{file: {"sha256", "size", "mtime_ns"}}`` of the data's main files (a folder: its listing).
    Hashes in ``previous`` are reused when size and modification time are unchanged."""
    spec = str(spec)
    if spec == "synthetic":
        return {"synthetic": "built-in, generated from data.options"}
    parts = spec.split(":", 2)
    paths = [Path(p) for p in parts[1:]] if spec.startswith("celeba:") and len(parts) == 3 else [Path(spec)]
    files: list[Path] = []
    for path in paths:
        if path.is_dir() and (path / "train.rec").is_file():
            files += [path / "train.rec", path / "train.idx"]
        elif path.suffix == ".rec":
            files += [path, path.with_suffix(".idx")]
        else:
            files.append(path)
    out = {}
    for path in files:
        if not path.exists():
            continue
        stat = path.stat()
        old = (previous or {}).get(str(path), {})
        kind = "listing sha256" if path.is_dir() else "sha256"
        if isinstance(old, dict) and old.get("size") == stat.st_size and old.get("mtime_ns") == stat.st_mtime_ns \
                and kind in old:
            out[str(path)] = old
            continue
        digest = _sha256_listing(path) if path.is_dir() else _sha256_file(path)
        out[str(path)] = {kind: digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return out


def environment(data_spec: str, previous: dict | None = None) -> dict:
    """:func:`runtime` plus the training data's fingerprint."""
    return {**runtime(), "data": data_fingerprint(data_spec, (previous or {}).get("data"))}


def runtime() -> dict:
    """Versions, CPU capability and threads: what a bit-identical rerun needs, data aside."""
    faiss_version = getattr(faiss, "__version__", "?")
    return {"must_match_for_a_bit_identical_rerun": ["config.yaml", "torch", "cpu_capability", "threads", "numpy",
                                                     "faiss", "device", "data"],
            "tailface": tailface.__version__, "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "numpy": np.__version__, "faiss": faiss_version, "python": platform.python_version(),
            "machine": platform.machine(), "cuda": torch.version.cuda if torch.cuda.is_available() else None}


def code_version() -> str:
    """The short git commit of the source tree, or ``tailface <version>`` outside a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or f"tailface {tailface.__version__}"


def run_record() -> dict:
    """Who wrote a result, when and where: the code's commit, the date (UTC), the machine, its CPUs,
    torch, its threads and the GPU's name (None without one). ``tailface reproduce`` keeps it in
    each cell's ``cell.json`` and in the line under each page's title."""
    return {"commit": code_version(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_environment(out: Path, data_spec: str) -> Path:
    """``out/environment.json`` (atomically); earlier runs' records are kept under ``history``."""
    path = out / "environment.json"
    previous: dict = {}
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = {}
    current = environment(data_spec, previous)
    history = list(previous.pop("history", []))
    if previous and {k: v for k, v in previous.items() if k != "data"} != \
            {k: v for k, v in current.items() if k not in ("data", "history")}:
        history.append(previous)  # resumed in another environment: both are recorded
    write_text(path, json.dumps({**current, "history": history}, indent=1) + "\n")
    return path


def _comparable(doc):
    if isinstance(doc, dict):
        return {k: _comparable(v) for k, v in doc.items() if k not in IGNORED_KEYS}
    if isinstance(doc, (list, tuple)):
        return [_comparable(v) for v in doc]
    return doc


def claim_output_folder(out: Path, config: dict, force: bool = False) -> None:
    """Refuse an output folder whose ``config.yaml`` is another experiment's (results would mix);
    with ``force``, delete that experiment's outputs first."""
    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        return
    try:
        saved = yaml.safe_load(saved_path.read_text())
    except (OSError, yaml.YAMLError):
        saved = None
    if _comparable(saved) == _comparable(yaml.safe_load(yaml.safe_dump(config, sort_keys=False))):
        return
    if not force:
        ours, theirs = _comparable(config), _comparable(saved) if isinstance(saved, dict) else {}
        diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        raise ConfigError(f"{saved_path}: {out} already holds a different experiment (blocks differing: "
                          f"{', '.join(diff) or 'all'}); use another --out, or --force to delete its results")
    for child in out.iterdir():
        if child.name.startswith(LOCK_NAME):
            continue  # the lock of the process running (tailface.locks), not a result
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def write_skipped(out: Path, faceset) -> Path | None:
    """``out/skipped.txt``: the files a ``skip_bad`` / ``on_missing: skip`` data source left out
    (``image id<TAB>reason`` lines); None when nothing was skipped."""
    skipped = list(getattr(faceset, "skipped", None) or [])
    if not skipped:
        return None
    path = out / "skipped.txt"
    write_text(path, "".join(f"{image_id}\t{why}\n" for image_id, why in skipped))
    return path
