"""Are two trained experiment folders (or reproduce cells) the same model, bit for bit?

    python scripts/compare_runs.py RUN_A RUN_B

Compares every ``final.pt`` found under RUN_A with the one at the same relative path under RUN_B
(every tensor of the model and the head with ``torch.equal``) and every ``metrics.json`` (equal
as parsed JSON). Prints one line per file and exits 0 only when everything matches (1 otherwise,
2 when a folder holds no checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from tailface.train.checkpoint import load_checkpoint


def same_tensors(a: dict, b: dict, where: str) -> list[str]:
    """Names of the tensors of ``a`` and ``b`` (nested dicts of tensors) that differ."""
    diffs = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            diffs += same_tensors(x, y, f"{where}.{key}")
        elif torch.is_tensor(x) and torch.is_tensor(y):
            if x.shape != y.shape or not torch.equal(x, y):
                diffs.append(f"{where}.{key}")
        elif torch.is_tensor(x) or torch.is_tensor(y):
            diffs.append(f"{where}.{key}")
    return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    checkpoints = sorted(p.relative_to(args.a) for p in args.a.rglob("final.pt"))
    if not checkpoints:
        print(f"{args.a}: no final.pt", file=sys.stderr)
        return 2
    ok = True
    for rel in checkpoints:
        a, b = load_checkpoint(args.a / rel), load_checkpoint(args.b / rel)
        diffs = same_tensors({"model": a["model"], "head": a["head"]}, {"model": b["model"], "head": b["head"]}, "")
        ok &= not diffs
        print(f"{rel}: {'identical weights' if not diffs else 'DIFFERENT: ' + ', '.join(diffs[:5])}")
    for rel in sorted(p.relative_to(args.a) for p in args.a.rglob("metrics.json")):
        same = (args.b / rel).is_file() and json.loads((args.a / rel).read_text()) == json.loads(
            (args.b / rel).read_text())
        ok &= same
        print(f"{rel}: {'identical metrics' if same else 'DIFFERENT metrics'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
