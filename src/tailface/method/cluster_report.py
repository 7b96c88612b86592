"""Summary of Step I: super-class sizes (in classes and in images) against head-class sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailface.method.aggregate import Aggregation
from tailface.method.partition import Partition


def _stats(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"count": 0, "min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {"count": int(len(values)), "min": int(values.min()), "median": float(np.median(values)),
            "mean": float(values.mean()), "max": int(values.max())}


def super_sizes(agg: Aggregation, part: Partition) -> tuple[np.ndarray, np.ndarray]:
    """(member classes, images) of every super class."""
    classes = np.bincount(agg.super_of_tail, minlength=agg.num_super)
    images = np.bincount(agg.super_of_tail, weights=part.counts[part.tail], minlength=agg.num_super)
    return classes, images.astype(np.int64)


def summarize(agg: Aggregation, part: Partition) -> dict:
    """Rows of the summary table: head classes (images), super classes of C, D and all (classes,
    images)."""
    classes, images = super_sizes(agg, part)
    rows = {"head classes": {"images": _stats(part.counts[part.head])}}
    for g in ("C", "D"):
        sel = agg.group_of_super == g
        rows[f"super classes of {g}"] = {"classes": _stats(classes[sel]), "images": _stats(images[sel])}
    rows["all super classes"] = {"classes": _stats(classes), "images": _stats(images)}
    return rows


def summary_markdown(agg: Aggregation, part: Partition) -> str:
    rows = summarize(agg, part)
    lines = ["| set | count | classes/set (min / median / mean / max) | images/set (min / median / mean / max) |",
             "|---|---:|---|---|"]

    def cell(s):
        return f"{s['min']} / {s['median']:.1f} / {s['mean']:.1f} / {s['max']}" if s["count"] else "-"

    for name, row in rows.items():
        count = row["images"]["count"]
        classes = cell(row["classes"]) if "classes" in row else "1"
        lines.append(f"| {name} | {count} | {classes} | {cell(row['images'])} |")
    return "\n".join(lines)


def plot_sizes(path: str | Path, agg: Aggregation, part: Partition) -> Path:
    """Histogram of images per super class against images per head class (PNG)."""
    # matplotlib inside (pyplot: 0.5 s measured): only when a plot is drawn, Agg chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, images = super_sizes(agg, part)
    head = part.counts[part.head]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    top = max(int(images.max()), int(head.max()))
    bins = np.linspace(0, top + 1, min(60, top + 2))
    ax[0].hist(head, bins=bins, alpha=0.6, label=f"head classes ({len(head)})")
    ax[0].hist(images, bins=bins, alpha=0.6, label=f"super classes ({len(images)})")
    ax[0].set_xlabel("images per class")
    ax[0].set_ylabel("classes")
    ax[0].legend()
    classes, _ = super_sizes(agg, part)
    for g in ("C", "D"):
        sel = agg.group_of_super == g
        if sel.any():
            ax[1].hist(classes[sel], bins=np.arange(1, classes.max() + 2) - 0.5, alpha=0.6, label=f"from group {g}")
    ax[1].set_xlabel("tail classes per super class")
    ax[1].set_ylabel("super classes")
    ax[1].legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
