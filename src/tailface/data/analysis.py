"""Long-tail statistics of a dataset: the paper's Table 1 (groups A-D) and Fig. 1 (class sizes).

Everything works on a class-size array (images per identity), so it is testable on hand-made
counts; ``FaceSet.class_counts()`` gives that array for a real set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tailface.data.groups import GROUPS, HEAD_GROUPS, TAIL_GROUPS, GroupThresholds, group_of_counts


@dataclass(frozen=True)
class GroupRow:
    """One row of Table 1. ``min``/``max`` images per class are None for an empty group."""

    group: str
    identities: int
    identity_share: float  # percent of all identities
    images: int
    image_share: float  # percent of all images
    min: int | None
    max: int | None


def group_table(counts, thresholds: GroupThresholds = GroupThresholds()) -> list[GroupRow]:
    """Rows A, B, C, D, head (A+B), tail (C+D), total for classes with ``counts`` images each.
    Classes with no image are not identities of the set and are left out."""
    counts = np.asarray(counts)
    if counts.ndim != 1 or (len(counts) and not np.issubdtype(counts.dtype, np.integer)):
        raise ValueError(f"counts must be a 1-D integer array, got {counts.dtype} {counts.shape}")
    if (counts < 0).any():
        raise ValueError("counts must be non-negative")
    counts = counts[counts > 0].astype(np.int64)
    groups = group_of_counts(counts, thresholds)
    total_ids, total_images = len(counts), int(counts.sum())
    selections = [(g, (g,)) for g in GROUPS] + [
        ("head", HEAD_GROUPS), ("tail", TAIL_GROUPS), ("total", GROUPS)]
    rows = []
    for name, members in selections:
        sizes = counts[np.isin(groups, members)]
        rows.append(GroupRow(
            group=name,
            identities=len(sizes),
            identity_share=_percent(len(sizes), total_ids),
            images=int(sizes.sum()),
            image_share=_percent(int(sizes.sum()), total_images),
            min=int(sizes.min()) if len(sizes) else None,
            max=int(sizes.max()) if len(sizes) else None,
        ))
    return rows


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def format_table(rows: list[GroupRow], thresholds: GroupThresholds = GroupThresholds()) -> str:
    """Plain-text Table 1."""
    ranges = thresholds.ranges()
    header = f"{'group':<6} {'images/class':>12} {'identities':>10} {'%':>6} {'images':>9} {'%':>6}  range"
    lines = [header, "-" * len(header)]
    for r in rows:
        if r.group in ranges:
            lo, hi = ranges[r.group]
            rule = f">= {lo}" if hi == np.inf else f"{lo}-{hi}"
        else:
            rule = {"head": "A+B", "tail": "C+D", "total": "all"}[r.group]
        span = f"[{r.min},{r.max}]" if r.min is not None else "-"
        if r.group == "head":
            lines.append("-" * len(header))
        lines.append(f"{r.group:<6} {rule:>12} {r.identities:>10,} {r.identity_share:>5.1f}% "
                     f"{r.images:>9,} {r.image_share:>5.1f}%  {span}")
    return "\n".join(lines)


def table_dict(rows: list[GroupRow], thresholds: GroupThresholds = GroupThresholds()) -> dict:
    """JSON-ready form of the table."""
    return {"thresholds": asdict(thresholds), "rows": [asdict(r) for r in rows]}


def plot_class_sizes(counts, path: str | Path, thresholds: GroupThresholds = GroupThresholds(),
                     title: str | None = None) -> Path:
    """Fig. 1: images per class, classes sorted by size (descending), log-scale y, group bands."""
    # matplotlib inside (pyplot: 0.5 s measured): every CLI start imports this module (tailface subset),
    # and the Agg backend is chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(counts)
    sizes = np.sort(counts[counts > 0])[::-1]
    if not len(sizes):
        raise ValueError("no class has an image: nothing to plot")
    groups = group_of_counts(sizes, thresholds)
    colors = {"A": "tab:blue", "B": "tab:green", "C": "tab:orange", "D": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 4))
    ranks = np.arange(1, len(sizes) + 1)
    for g in GROUPS:
        mask = groups == g
        if mask.any():
            ax.fill_between(ranks[mask], sizes[mask], 0.8, step="mid", color=colors[g], alpha=0.6,
                            label=f"{g}: {mask.sum():,} identities, {sizes[mask].sum():,} images")
    ax.plot(ranks, sizes, color="black", linewidth=0.8, drawstyle="steps-mid")
    ax.set_yscale("log")
    ax.set_ylim(0.8, sizes[0] * 1.5)
    ax.set_xlim(0, len(sizes) + 1)
    ax.set_xlabel("identities, sorted by number of images")
    ax.set_ylabel("images per identity (log scale)")
    ax.set_title(title or f"{len(sizes):,} identities, {sizes.sum():,} images")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
