"""The tail sweep: softmax on AB plus a growing share of the tail (C, then D), and ours on the
full set; the premise "the tail hurts softmax" as a curve (``OUT/sweep.png``). On a held-out or
synthetic test set the DIR column states its resolution (one genuine probe = x points, and the
impostor probes its FAR=1% threshold rests on: :class:`tailface.evidence.tables.DirResolution`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tailface.data.groups import group_of_counts
from tailface.evidence import tables
from tailface.evidence.tables import Metric, Results
from tailface.evidence.targets.registry import Claim, Inputs, Report, Target, register_target

LABELS = {"ab": "AB", "sweep-C25": "AB + 25% of C", "sweep-C50": "AB + 50% of C", "softmax-ABC": "AB + C",
          "sweep-D25": "AB + C + 25% of D", "sweep-D50": "AB + C + 50% of D", "abcd": "ABCD"}


def points(inputs: Inputs) -> list[tuple[str, int]]:
    """(softmax model, tail identities it adds to AB), from AB to ABCD."""
    groups = group_of_counts(inputs.faceset.class_counts(), inputs.thresholds)
    n_c, n_d = int((groups == "C").sum()), int((groups == "D").sum())
    return [("ab", 0), ("sweep-C25", round(0.25 * n_c)), ("sweep-C50", round(0.5 * n_c)), ("softmax-ABC", n_c),
            ("sweep-D25", n_c + round(0.25 * n_d)), ("sweep-D50", n_c + round(0.5 * n_d)), ("abcd", n_c + n_d)]


def write(target: Target, inputs: Inputs) -> Report:
    results = inputs.results
    curve = points(inputs)
    everything = curve[-1][1]
    metrics = tables.available(results, tables.CLAIM_METRICS)
    resolution = tables.dir_resolution(results, target.models)
    names = [f"{m.name} ({resolution.short()})" if resolution and m.name == tables.METRICS[1].name else m.name
             for m in metrics]
    lines = ["| training set | tail identities added | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(metrics)]
    for model, added in curve:
        lines.append(f"| {LABELS[model]} | {added:,} | " + " | ".join(results.cell(model, m).text() for m in metrics)
                     + " |")
    lines.append(f"| ours (full set) | {everything:,} | "
                 + " | ".join(results.cell("ours", m).text() for m in metrics) + " |")
    plot(results, curve, metrics, inputs.out / "sweep.png")
    lines += ["", resolution.text()] if resolution else []
    markdown = "\n".join(lines + ["", "![tail sweep](sweep.png)", "", "## Claims", "",
                                  tables.claims_table(results, target.claims), "", tables.VERDICT_NOTE])
    tail_added = {**dict(curve), "ours": everything}
    models = tables.model_numbers(results, target.models, tables.CLAIM_METRICS)
    for model, entry in models.items():
        entry.update(label=LABELS.get(model, "ours (full set)"), tail_identities_added=tail_added[model])
    return Report(markdown, {"models": models, "claims": tables.claim_numbers(results, target.claims),
                             "dir_resolution": dataclasses.asdict(resolution) if resolution else None})


def plot(results: Results, curve: list[tuple[str, int]], metrics: list[Metric], path: Path) -> None:
    # matplotlib inside: the Agg backend is chosen before pyplot loads (as tailface.eval.plots does)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        xs, ys, es = [], [], []
        for model, added in curve:
            c = results.cell(model, metric)
            if c.n:
                xs.append(added)
                ys.append(100 * c.mean)
                es.append(0 if c.n < 2 else 100 * c.std)
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label="softmax")
        ours = results.cell("ours", metric)
        if ours.n and curve:
            ax.errorbar([curve[-1][1]], [100 * ours.mean], yerr=[0 if ours.n < 2 else 100 * ours.std], marker="*",
                        markersize=12, linestyle="none", capsize=3, label="ours (full set)")
        ax.set_xlabel("tail identities added to AB")
        ax.set_ylabel(f"{metric.name} (%)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


register_target(Target(
    "sweep", "Tail sweep: softmax on AB plus a growing share of the tail",
    models=("ab", "sweep-C25", "sweep-C50", "softmax-ABC", "sweep-D25", "sweep-D50", "abcd", "ours"),
    claims=(Claim("AB + 25% of C > AB (does a little tail hurt?)", "sweep-C25", "ab"), Claim("AB > ABCD", "ab", "abcd"),
            Claim("ours > ABCD", "ours", "abcd")),
    write=write))
