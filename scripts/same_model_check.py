"""Is a ``tailface reproduce`` cell the model its shipped config trains at the same seed, with one
thread? (issue 21, item 6; ``tailface.evidence.same_model`` says why the thread count matters.)

Trains the shipped config of MODEL (``same_model.shipped_config``: ``train.seed`` set, the data
named as the cell names it, ``$TAILFACE_DATA/...``; nothing else changed) with ``tailface train`` under
``OMP_NUM_THREADS=1`` (the thread count of a cell of ``reproduce --jobs 2`` on 2 cores) into OUT,
then compares its ``train/final.pt`` with the cell's, tensor for tensor, and prints both cells'
BLUFR figures. Exit status 0 when the weights are identical, 1 when they differ.

    TAILFACE_DATA=/work/data nice python scripts/same_model_check.py ab 7 \\
        --cells /work/runs/reproduce-cpu --out /work/runs/same-model-ab-seed7
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from tailface.evidence import cells, same_model
from tailface.evidence.cells import Profile


def blufr(metrics: Path) -> str:
    report = json.loads(metrics.read_text())["blufr"]["report"]
    return (f"VR@FAR=0.1% {100 * report['vr_far_0.1%']['mean']:.2f}, "
            f"DIR@FAR=1% {100 * report['dir_far_1%_rank1']['mean']:.2f}")


def differing(a: Path, b: Path) -> list[str]:
    """The tensors of the model and head state of two checkpoints that are not bit-identical."""
    one, two = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    out = []
    for part in ("model", "head"):
        for key in sorted(set(one[part]) | set(two[part])):
            x, y = one[part].get(key), two[part].get(key)
            if x is None or y is None or x.shape != y.shape or not torch.equal(x, y):
                out.append(f"{part}.{key}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a cell model with a shipped config (ab, abcd)")
    p.add_argument("seed", type=int)
    p.add_argument("--cells", required=True, help="the reproduce run folder holding cells/MODEL/seedK")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--out", required=True, help="where the shipped config trains")
    a = p.parse_args()
    profile = Profile.load(a.profile)
    cell = cells.cell_dir(Path(a.cells), a.model, a.seed)
    if not (cell / "train" / "final.pt").is_file():
        print(f"{cell}: no finished cell (train/final.pt) to compare with", file=sys.stderr)
        return 2
    doc = same_model.shipped_config(profile, a.model, a.seed)
    if doc is None:
        print(f"{a.model}: no shipped config of the {profile.family} family", file=sys.stderr)
        return 2
    doc["data"]["train"] = profile.data_spec()  # the same files as the cell's, named as the cell names them
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    config = out.parent / f"{out.name}.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(["tailface", "train", str(config), "--out", str(out), "--no-progress"], env=env, check=True)
    diff = differing(cell / "train" / "final.pt", out / "train" / "final.pt")
    print(f"cell {cell}: {blufr(cells.metrics_path(Path(a.cells), a.model, a.seed))}")
    print(f"shipped config, OMP_NUM_THREADS=1, {out}: {blufr(out / 'eval' / 'metrics.json')}")
    print("weights: identical" if not diff else f"weights: {len(diff)} tensors differ ({', '.join(diff[:5])} ...)")
    return 0 if not diff else 1


if __name__ == "__main__":
    sys.exit(main())
