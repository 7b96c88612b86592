"""Collect the metrics of scripts/celeba_table3.sh's runs into one Markdown table (the paper's Table 3 layout).

    python scripts/celeba_table3_summary.py [--runs runs]

Rows whose run has not finished its evaluation are listed as missing, never filled in.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROWS = [  # (label as in the paper's Table 3, metrics.json under the runs folder)
    ("ABCD (softmax, all classes)", "celeba-abcd/eval/metrics.json"),
    ("AB (softmax, head classes)", "celeba-ab/eval/metrics.json"),
    ("AB-ABCD (pretrain AB, fine-tune ABCD)", "celeba-ab_abcd/eval/metrics.json"),
    ("Resampling", "celeba-resampling/eval/metrics.json"),
    ("Center loss", "celeba-center_loss/eval/metrics.json"),
    ("Range loss", "celeba-range_loss/eval/metrics.json"),
    ("ArcFace", "celeba-arcface/eval/metrics.json"),
    ("Base model of ours (AB, same seed)", "celeba/eval/base/metrics.json"),
    ("Ours (aggregate-and-disperse)", "celeba/eval/ours/metrics.json"),
    ("Base model of ArcFace + ours (AB with ArcFace)", "celeba-arcface-ours/eval/base/metrics.json"),
    ("ArcFace + ours", "celeba-arcface-ours/eval/ours/metrics.json"),
]


def row_values(metrics: dict) -> list[str]:
    blufr = metrics["blufr"]["report"]
    vr, dir_ = blufr["vr_far_0.1%"], blufr["dir_far_1%_rank1"]
    lfw = metrics["lfw"]
    mega = metrics["megaface-proxy"]
    return [f"{100 * vr['mean']:.2f} ± {100 * vr['std']:.2f}",
            f"{100 * dir_['mean']:.2f} ± {100 * dir_['std']:.2f}",
            f"{100 * lfw['accuracy_mean']:.2f}",
            f"{100 * mega['rank1'][-1]:.2f} @ {mega['distractor_counts'][-1]:,}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    print("| model | BLUFR VR@FAR=0.1% | BLUFR DIR@FAR=1% (rank 1) | LFW 6,000-pair acc. "
          "| MegaFace proxy rank-1 @ distractors |")
    print("|---|---:|---:|---:|---:|")
    for label, rel in ROWS:
        path = args.runs / rel
        cells = row_values(json.loads(path.read_text())) if path.is_file() else [f"missing ({path})", "", "", ""]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
