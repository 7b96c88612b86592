"""The super classes: step I's clustering measured on each finished cell
(:mod:`tailface.evidence.superclasses`): k-means quality, look-alike purity, accuracies."""

from __future__ import annotations

import math

from tailface.evidence import cells
from tailface.evidence.stats import Cell
from tailface.evidence.superclasses import cell_quality
from tailface.evidence.tables import LABELS
from tailface.evidence.targets.registry import Inputs, Report, Target, register_target

# (heading, value of one seed's group quality, scale, digits)
COLUMNS = [("k-means inertia / scikit-learn's",
            lambda q: q["inertia"] / q["sklearn_inertia"] if q["sklearn_inertia"] else math.nan, 1.0, 3),
           ("look-alike purity %", lambda q: q["look_alike_purity"], 100.0, 1),
           ("chance %", lambda q: q["chance_purity"], 100.0, 2),
           ("super-class accuracy %", lambda q: q["super_class_accuracy"], 100.0, 1),
           ("identity accuracy %", lambda q: q["identity_accuracy"], 100.0, 1)]
EXPLAINED = [
    "Per tail group, on the base model's features that drove the clustering (mean +- std over seeds):", "",
    "- *k-means inertia / scikit-learn's*: the method's k-means against scikit-learn's KMeans (k-means++, 10 restarts) "
    "at the same k; above 1 = ours is worse;",
    "- *look-alike purity*: share of tail classes whose nearest other tail class (class means) is in the same super "
    "class, against *chance* (sum of squared super-class shares);",
    "- *super-class accuracy* vs *identity accuracy*: images (of classes with >= 2) assigned to the nearest "
    "super-class centroid, or to the nearest class mean, the image left out (the prototype stage's task against the "
    "identity task on the same features).", ""]


def write(target: Target, inputs: Inputs) -> Report:
    results = inputs.results
    lines = ["| model | group | classes -> super classes | " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|---|---|---:|" + "---:|" * len(COLUMNS)]
    data: dict[str, dict] = {}  # model -> seed -> group -> quality
    without_reference = False  # scikit-learn missing: no inertia to compare with
    for model in target.models:
        qualities = {s: cell_quality(cells.cell_dir(results.root, model, s)) for s in results.seeds
                     if cells.metrics_path(results.root, model, s).is_file()}
        if qualities:
            data[model] = {str(s): q for s, q in qualities.items()}
        for group in ("C", "D"):
            per_seed = [q[group] for q in qualities.values() if group in q]
            if not per_seed:
                continue
            without_reference |= any(q["sklearn_inertia"] is None for q in per_seed)
            row = [LABELS.get(model, model), group, f"{per_seed[0]['classes']:,} -> {per_seed[0]['super_classes']:,}"]
            for _, get, scale, digits in COLUMNS:
                row.append(Cell(tuple(float(get(q)) for q in per_seed)).text(scale, digits))
            lines.append("| " + " | ".join(row) + " |")
    if len(lines) == 2:
        return Report("(no finished ours cell yet)", {"quality": data})
    if without_reference:
        lines += ["", "(nan in the inertia column: scikit-learn is not installed here; "
                  "`pip install 'tailface[evidence]'` and rerun with `--report-only`.)"]
    return Report("\n".join([*EXPLAINED, *lines]), {"quality": data})


register_target(Target(
    "superclasses", "The super classes: k-means quality and purity",
    ("ours", "ours-base-abcd", "ours-spherical"),  # the method's clusterings: shipped, two probes
    (), write))
