"""Fig. 2: the mean L2 norm of the classifier rows of each group, ABCD softmax against ours."""

from __future__ import annotations

import numpy as np

from tailface.evidence import cells
from tailface.evidence.targets.registry import Inputs, Report, Target, register_target
from tailface.method.diagnostics import checkpoint_row_groups, norms_by_group, norms_table, plot_norms

LABELLED = (("abcd", "ABCD softmax"), ("ours", "ours (dispersion)"))


def write(target: Target, inputs: Inputs) -> Report:
    results = inputs.results
    per_model: dict[str, dict] = {}
    per_seed: dict[str, dict] = {}  # the data: each seed's mean norm per group
    for model, label in LABELLED:
        seeds = [s for s in results.seeds if cells.final_checkpoint(results.root, model, s).is_file()]
        if not seeds:
            continue
        groups: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}
        for s in seeds:
            weight, rows = checkpoint_row_groups(cells.final_checkpoint(results.root, model, s), inputs.faceset,
                                                 inputs.thresholds)
            for g, stats in norms_by_group(weight, rows).items():
                groups.setdefault(g, []).append(stats["mean"])
                sizes[g] = int(stats["count"])  # classifier rows of the group (the same every seed)
        per_model[f"{label} (n={len(seeds)})"] = {g: {"mean": float(np.mean(v)), "std": float(np.std(v)),
                                                       "median": float(np.median(v)), "count": sizes[g]}
                                                   for g, v in groups.items()}
        per_seed[model] = {"label": label, "groups": {g: {**per_model[f"{label} (n={len(seeds)})"][g], "seeds": {
            str(s): float(m) for s, m in zip(seeds, v)}} for g, v in groups.items()}}
    data = {"norms": per_seed}
    if not per_model:
        return Report("(no finished ABCD or ours cell yet)", data)
    plot_norms(inputs.out / "fig2.png", per_model)
    return Report("\n".join([
        "Mean L2 norm of the classifier rows of each group: mean over seeds of the group's mean norm, std and median "
        "over seeds of it; rows = the group's classifier rows.", "", norms_table(per_model), "",
        "![row norms](fig2.png)", "",
        "Paper, Fig. 2a: under plain softmax the rows of tail classes get smaller norms (a biased boundary); the "
        "method is meant to correct it."]), data)


register_target(Target("fig2", "Fig. 2: classifier row norms per group", ("abcd", "ab", "ours"), (), write))
