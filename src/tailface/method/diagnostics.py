"""Classifier row norms per group A-D (the paper's Fig. 2a: under plain softmax the rows of tail
classes end up shorter, biasing the decision boundaries against them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.groups import GROUPS, GroupThresholds, group_of_counts
from tailface.errors import DataError
from tailface.method.partition import Partition
from tailface.train.checkpoint import load_checkpoint


def norms_by_group(weight, row_groups: np.ndarray) -> dict[str, dict]:
    """Mean, std, median and count of the L2 norms of the rows of ``weight``, per group letter."""
    norms = np.linalg.norm(np.asarray(weight, dtype=np.float64), axis=1)
    row_groups = np.asarray(row_groups)
    if len(norms) != len(row_groups):
        raise ValueError(f"{len(norms)} rows for {len(row_groups)} group labels")
    out = {}
    for g in GROUPS:
        sel = norms[row_groups == g]
        if len(sel):
            out[g] = {"mean": float(sel.mean()), "std": float(sel.std()), "median": float(np.median(sel)),
                      "count": int(len(sel))}
    return out


def checkpoint_row_groups(checkpoint: str | Path, faceset: FaceSet,
                          thresholds: GroupThresholds = GroupThresholds()) -> tuple[np.ndarray, np.ndarray]:
    """(classifier rows, group of each row) of a checkpoint trained on ``faceset``.

    Recognises a plain head over all classes (rows in class order) and a dispersion head (rows:
    head classes then tail classes, ascending, under ``thresholds``)."""
    ckpt = load_checkpoint(checkpoint)
    state = ckpt.get("head") or {}
    if "weight" not in state:
        raise DataError(f"{checkpoint}: checkpoint has no classifier weight")
    weight = state["weight"].detach().cpu().numpy()
    counts = faceset.class_counts()
    groups = group_of_counts(counts, thresholds)
    if "super_of_tail" in state:
        part = Partition.from_faceset(faceset, thresholds)
        if len(weight) != part.num_head + part.num_tail or len(state["super_of_tail"]) != part.num_tail:
            raise DataError(f"{checkpoint}: dispersion head of {len(weight)} rows does not match "
                            f"{faceset.source} ({part.num_head} head + {part.num_tail} tail classes "
                            f"under {thresholds})")
        return weight, groups[np.concatenate([part.head, part.tail])]
    if len(weight) != len(counts):
        raise DataError(f"{checkpoint}: classifier has {len(weight)} rows but {faceset.source} has "
                        f"{len(counts)} classes; row norms per group need a head over every class")
    return weight, groups


def norms_table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: one row per (model, group)."""
    lines = ["| model | group | rows | mean norm | std | median |", "|---|---|---:|---:|---:|---:|"]
    for name, per_group in results.items():
        for g, s in per_group.items():
            lines.append(f"| {name} | {g} | {s['count']} | {s['mean']:.4f} | {s['std']:.4f} | {s['median']:.4f} |")
    return "\n".join(lines)


def plot_norms(path: str | Path, results: dict[str, dict[str, dict]]) -> Path:
    """Bar chart of mean row norm (+- std) per group, one bar per model (PNG)."""
    # matplotlib inside (pyplot: 0.5 s measured): only when a plot is drawn, Agg chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    width = 0.8 / max(1, len(results))
    for i, (name, per_group) in enumerate(results.items()):
        xs = [GROUPS.index(g) + i * width for g in per_group]
        ax.bar(xs, [s["mean"] for s in per_group.values()], width,
               yerr=[s["std"] for s in per_group.values()], label=name, capsize=3)
    ax.set_xticks(np.arange(len(GROUPS)) + width * (len(results) - 1) / 2)
    ax.set_xticklabels([f"group {g}" for g in GROUPS])
    ax.set_ylabel("classifier row L2 norm")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
