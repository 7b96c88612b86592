"""Fig. 3: softmax on a uniform and on a long-tail training set of the same identities and images,
their open-set ROC on BLUFR (``OUT/fig3.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailface.evidence.cells import fig3_sizes
from tailface.evidence.tables import VERDICT_NOTE, Results, claim_numbers, claims_table, model_numbers, model_table
from tailface.evidence.targets.registry import Claim, Inputs, Report, Target, register_target


def rank1_curves(results: Results, models: tuple[str, ...]) -> dict[str, tuple[list[float], np.ndarray]]:
    """Each model's open-set curve at rank 1 (DIR against FAR), averaged over its seeds."""
    curves = {}
    for model in models:
        ms = list(results.metrics(model).values())
        if ms and "blufr" in ms[0]:
            o = ms[0]["blufr"]["openset_curve"]
            rank1 = np.mean([np.asarray(m["blufr"]["openset_curve"]["mean"])[o["rank"].index(1)] for m in ms], axis=0)
            curves[model] = (o["far"], rank1)
    return curves


def plot(results: Results, curves: dict[str, tuple[list[float], np.ndarray]], path: Path) -> None:
    # matplotlib inside: the Agg backend is chosen before pyplot loads (as tailface.eval.plots does)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for model, (far, rate) in curves.items():
        far_ = np.asarray(far)
        keep = far_ > 0
        ax.semilogx(far_[keep], 100 * np.asarray(rate)[keep], label=f"{model} (n={len(results.metrics(model))})")
    ax.set_xlabel("false alarm rate")
    ax.set_ylabel("DIR at rank 1 (%)")
    ax.set_title("Open-set identification ROC on BLUFR")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(target: Target, inputs: Inputs) -> Report:
    results = inputs.results
    identities, images = fig3_sizes(inputs.faceset, inputs.thresholds)
    curves = rank1_curves(results, target.models)
    if curves:
        plot(results, curves, inputs.out / "fig3.png")
        plots_line = "![open-set ROC, uniform vs long-tail](fig3.png)"
    else:
        plots_line = "(no BLUFR curves yet)"
    markdown = "\n".join([
        f"Both training sets: {identities:,} identities and {images:,} images (uniform: {images // identities} per "
        "identity; long-tail: power-law sizes), the same network and budget.", "",
        model_table(results, target.models), "", plots_line, "", "## Claims", "", claims_table(results, target.claims),
        "", "Paper, Fig. 3: on 400K images of 8,000 identities, the uniform set's open-set ROC lies above the "
        "long-tail set's at every FAR.", "", VERDICT_NOTE])
    return Report(markdown, {
        "sizes": {"identities": identities, "images": images}, "models": model_numbers(results, target.models),
        "claims": claim_numbers(results, target.claims),
        "rank1_curves": {m: {"far": list(far), "dir": [float(v) for v in rate]} for m, (far, rate) in curves.items()}})


register_target(Target("fig3", "Fig. 3: uniform vs long-tail training set", ("uniform", "long-tail"),
                       (Claim("uniform > long-tail", "uniform", "long-tail"),), write))
