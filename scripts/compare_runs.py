"""Are two trained experiment folders (or reproduce cells) the same model, bit for bit?

    python scripts/compare_runs.py RUN_A RUN_B

Compares every ``final.pt`` found under RUN_A with the one at the same relative path under RUN_B
(every tensor of the model and the head with ``torch.equal``) and every ``metrics.json``: every
number must be equal (``==``, at every key of the parsed JSON); text may differ only where it names
the run folder or a file in it (the checkpoint's path, a features cache's name), and those keys
are listed. Prints one line per file and exits 0 only when every weight and every number matches
(1 otherwise, 2 when a folder holds no checkpoint).
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


def differing_leaves(a, b, where: str = "") -> tuple[list[str], list[str]]:
    """``(numbers, texts)``: the keys of two parsed JSON documents whose values differ, numbers
    (and structure) apart from text."""
    if isinstance(a, dict) and isinstance(b, dict):
        numbers: list[str] = []
        texts: list[str] = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                numbers.append(f"{where}/{key} (only in one)")
                continue
            n, t = differing_leaves(a[key], b[key], f"{where}/{key}")
            numbers += n
            texts += t
        return numbers, texts
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = [differing_leaves(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))]
        return [k for n, _ in pairs for k in n], [k for _, t in pairs for k in t]
    if a == b:
        return [], []
    return ([], [where]) if isinstance(a, str) and isinstance(b, str) else ([where], [])


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
        if not (args.b / rel).is_file():
            ok = False
            print(f"{rel}: missing in {args.b}")
            continue
        first, second = (json.loads((root / rel).read_text()) for root in (args.a, args.b))
        numbers, texts = differing_leaves(first, second)
        ok &= not numbers
        print(f"{rel}: " + (f"DIFFERENT numbers at {', '.join(numbers[:5])}" if numbers else "identical numbers")
              + (f" (text differs at {', '.join(texts)})" if texts else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
