"""Shared by the robustness tests: tiny configs and running the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

import tailface

SRC = str(Path(tailface.__file__).resolve().parent.parent)

TINY_DATA = {"train": "synthetic", "options": {"num_identities": 60, "image_size": 16, "max_images": 30}}
TINY_MODEL = {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8}
TINY_TRAIN = {"epochs": 1, "batch_size": 16, "max_steps": 3, "checkpoint_every": 1, "progress": False, "seed": 0}

TINY_METHOD = {"name": "tiny-method", "data": TINY_DATA, "model": TINY_MODEL, "head": {"name": "softmax"},
               "train": TINY_TRAIN, "method": {"budget": 2, "evaluate": ["ours"]},
               "eval": {"protocols": ["synthetic"], "batch_size": 256}}
TINY_BASELINE = {"name": "tiny-baseline", "data": TINY_DATA, "model": TINY_MODEL, "head": {"name": "softmax"},
                 "train": {**TINY_TRAIN, "max_steps": 4}, "eval": {"protocols": ["synthetic"], "batch_size": 256}}


def cli(args: list[str], kill_at: str | None = None, cwd: Path | None = None, timeout: float = 300,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m tailface.cli ARGS`` with one torch thread (and ``TAILFACE_TEST_KILL_AT``)."""
    full_env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                **(env or {})}
    full_env.pop("TAILFACE_TEST_KILL_AT", None)
    if kill_at:
        full_env["TAILFACE_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "tailface.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, weights_only=True)
    return {**{"m." + k: v for k, v in ckpt["model"].items()}, **{"h." + k: v for k, v in ckpt["head"].items()}}


def assert_same_weights(a: Path, b: Path) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys(), (a, b)
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"{b} differs from {a} in {different[:5]}"
