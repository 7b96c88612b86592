"""PNG plots of evaluation curves (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure():
    # matplotlib inside (pyplot: 0.5 s measured): only when a plot is drawn, Agg chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(5, 4), dpi=100)


def _save(plt, fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _positive(far, values):
    far, values = np.asarray(far, float), np.asarray(values, float)
    keep = far > 0  # log axis
    return far[keep], values[keep]


def plot_roc(far, rate, path, title="Verification ROC", ylabel="verification rate (%)") -> Path:
    plt, fig, ax = _figure()
    x, y = _positive(far, rate)
    ax.semilogx(x * 100, y * 100, marker=".")
    ax.set(xlabel="false accept rate (%)", ylabel=ylabel, title=title, ylim=(0, 100))
    ax.grid(True, which="both", alpha=0.3)
    return _save(plt, fig, path)


def plot_dir(far, dir_rank, path, rank=1) -> Path:
    return plot_roc(far, dir_rank, path, title=f"Open-set identification, rank {rank}",
                    ylabel="detection and identification rate (%)")


def plot_cmc(ranks, rates, path, title="CMC", labels=None) -> Path:
    plt, fig, ax = _figure()
    rates = np.atleast_2d(np.asarray(rates, float))
    for i, r in enumerate(rates):
        ax.plot(ranks, r * 100, marker=".", label=None if labels is None else labels[i])
    if labels is not None:
        ax.legend(fontsize=7)
    ax.set(xlabel="rank", ylabel="identification rate (%)", title=title, ylim=(0, 100))
    ax.grid(True, alpha=0.3)
    return _save(plt, fig, path)


def plot_roc_points(fpr, tpr, path, title="ROC", marks=None, xlim=(1e-6, 1.0)) -> Path:
    """An ROC as its points joined (log FAR axis, points at FPR 0 left out); ``marks`` = ``(fars,
    tars)`` drawn as dots (e.g. the exact TAR at the reported FARs)."""
    plt, fig, ax = _figure()
    x, y = _positive(fpr, tpr)
    ax.semilogx(x, y * 100, lw=1)
    if marks is not None:
        mx, my = _positive(*marks)
        ax.semilogx(mx, my * 100, "o", ms=3)
    ax.set(xlabel="false accept rate", ylabel="true accept rate (%)", title=title, xlim=xlim, ylim=(0, 100))
    ax.grid(True, which="both", alpha=0.3)
    return _save(plt, fig, path)
