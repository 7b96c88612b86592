"""The paper's tables and figures from finished cells: markdown in the paper's layout, the paper's
own figures beside ours, every cell mean +- std over seeds, and a verdict for each claimed ordering.

Each writer takes a :class:`Results` (where the cells are, which seeds) and returns the markdown;
plots go beside it. A cell that has not finished for a seed is left out of that seed (the table
says how many seeds each cell has); a missing cell is shown as ``-``, never filled in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.evidence import cells
from tailface.evidence.stats import Cell, paired_difference

# The paper's figures (Ma et al. 2020, Tables 1-4; ResNet-34 on 1.1M MS-Celeb-1M images; MegaFace
# rank-1 with 1M distractors), in percent.
PAPER_TABLE1 = {"A": (17_032, 20.0, "695.8K", 62.3, "[21,217]"), "B": (15_000, 18.6, "207.0K", 18.6, "[10,20]"),
                "C": (27_000, 31.7, "163.5K", 14.6, "[4,9]"), "D": (26_132, 30.7, "49.9K", 4.5, "[1,3]")}
PAPER = {  # model -> (BLUFR VR@0.1%, BLUFR DIR@1%, MegaFace rank-1)
    "softmax-A": (96.08, 79.57, 61.25), "ab": (96.62, 83.78, 63.48), "softmax-ABC": (96.48, 82.45, 61.37),
    "abcd": (96.50, 82.11, 60.33), "ab-abcd": (96.69, 84.27, 63.55), "resampling": (96.73, 84.36, 63.16),
    "center-loss": (97.24, 83.74, 62.88), "range-loss": (96.90, 84.13, 63.30), "ours": (97.33, 86.73, 64.90),
    "arcface": (97.92, 90.26, 68.63), "arcface-ours": (97.90, 90.72, 69.27),
    "ours-nk0.25": (96.88, 84.16, 62.90), "ours-nk0.5": (97.29, 86.82, 64.69), "ours-nk2": (97.05, 85.89, 64.02),
}
LABELS = {"softmax-A": "A", "ab": "AB", "softmax-ABC": "ABC", "abcd": "ABCD", "ab-abcd": "AB-ABCD",
          "resampling": "Resampling", "center-loss": "Center loss", "range-loss": "Range loss", "ours": "Ours",
          "arcface": "ArcFace", "arcface-ours": "ArcFace + ours", "ours-nk0.25": "0.25 x auto",
          "ours-nk0.5": "0.5 x auto", "ours-nk2": "2 x auto", "uniform": "uniform", "long-tail": "long-tail"}


@dataclass(frozen=True)
class Metric:
    name: str
    get: Callable[[dict], float]
    paper: int | None  # index into PAPER's tuples


def _blufr(key: str) -> Callable[[dict], float]:
    """BLUFR's mean over its trials; else the held-out (``tailface study``) or synthetic protocol."""
    def get(m: dict) -> float:
        if "blufr" in m:
            return m["blufr"]["report"][key]["mean"]
        return m["heldout"][key] if "heldout" in m else m["synthetic"][key]

    return get


METRICS = [
    Metric("VR@FAR=0.1%", _blufr("vr_far_0.1%"), 0),
    Metric("DIR@FAR=1%", _blufr("dir_far_1%_rank1"), 1),
    Metric("MegaFace-proxy rank-1", lambda m: m["megaface-proxy"]["rank1"][-1], 2),
]
CLAIM_METRICS = METRICS[:2]


def trial_std(m: dict, key: str = "vr_far_0.1%") -> float:
    """The spread over BLUFR's 10 trials of one model (not a seed spread)."""
    return m["blufr"]["report"][key]["std"] if "blufr" in m else math.nan


@dataclass
class Results:
    root: Path
    seeds: list[int]

    def metrics(self, model: str) -> dict[int, dict]:
        out = {}
        for seed in self.seeds:
            path = cells.metrics_path(self.root, model, seed)
            if path.is_file():
                out[seed] = json.loads(path.read_text())
        return out

    def values(self, model: str, metric: Metric) -> dict[int, float]:
        out = {}
        for seed, m in self.metrics(model).items():
            try:
                out[seed] = float(metric.get(m))
            except (KeyError, IndexError):
                continue
        return out

    def cell(self, model: str, metric: Metric) -> Cell:
        return Cell(tuple(self.values(model, metric).values()))


def _available(results: Results, metrics: list[Metric]) -> list[Metric]:
    """The metrics some cell has (the synthetic profile has no MegaFace proxy)."""
    models = [m for m in cells.MODELS if results.metrics(m)]
    return [metric for metric in metrics if any(results.values(m, metric) for m in models)] or metrics[:2]


def model_table(results: Results, models: list[str], metrics: list[Metric] | None = None) -> str:
    metrics = _available(results, metrics or METRICS)
    head = "| model | " + " | ".join(f"{m.name} (ours) | paper" for m in metrics) + " | BLUFR trial std (VR) |"
    lines = [head, "|---|" + "---:|---:|" * len(metrics) + "---:|"]
    for model in models:
        row = [LABELS.get(model, model)]
        for metric in metrics:
            paper = PAPER.get(model)
            row += [results.cell(model, metric).text(),
                    f"{paper[metric.paper]:.2f}" if paper and metric.paper is not None else "-"]
        spreads = [trial_std(m) for m in results.metrics(model).values()]
        spreads = [s for s in spreads if not math.isnan(s)]
        row.append(f"{100 * np.mean(spreads):.2f}" if spreads else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def claims_table(results: Results, claims: list[tuple[str, str, str]]) -> str:
    """``claims``: (text, model A, model B) for "A > B"; one row per claim and metric."""
    lines = ["| claim (paper) | metric | A - B, mean [95% interval] over paired seeds | verdict |",
             "|---|---|---|---|"]
    for text, a, b in claims:
        for metric in _available(results, CLAIM_METRICS):
            d = paired_difference(results.values(a, metric), results.values(b, metric))
            lines.append(f"| {text} | {metric.name} | {d.text()} | {d.verdict} |")
    return "\n".join(lines)


VERDICT_NOTE = ("Verdicts: *holds* = the 95% t-interval of the paired difference over seeds lies above 0; "
                "*reversed* = below 0; *within noise* = it contains 0; *one seed* = a single seed, no interval: "
                "it cannot be told from noise; *not run yet* = no seed of both. Cells: mean +- std over seeds "
                "(n = seeds finished); the BLUFR "
                "trial std is the spread over BLUFR's 10 test trials (mean over seeds), reported apart from the "
                "seed spread.")


# -- the writers -----------------------------------------------------------------------------------

def table1(results: Results, faceset, thresholds) -> str:
    from tailface.data.analysis import format_table, group_table

    rows = group_table(faceset.class_counts(), thresholds)
    paper = ["| group | identities | % | images | % | images per class |", "|---|---:|---:|---:|---:|---|"]
    for g, (n, pn, im, pi, span) in PAPER_TABLE1.items():
        paper.append(f"| {g} | {n:,} | {pn}% | {im} | {pi}% | {span} |")
    return "\n".join(["## Ours", "", "```", format_table(rows, thresholds), "```", "",
                      "## Paper (MS-Celeb-1M subset, 85,164 identities, 1.1M images)", "", *paper])


def fig1(results: Results, faceset, thresholds, out: Path) -> str:
    from tailface.data.analysis import plot_class_sizes

    plot_class_sizes(faceset.class_counts(), out / "fig1.png", thresholds)
    counts = np.sort(faceset.class_counts())[::-1]
    return "\n".join([
        "![images per identity, sorted](fig1.png)", "",
        f"Ours: {len(counts):,} identities, {counts.sum():,} images; the largest identity has {counts[0]} images, "
        f"the median {int(np.median(counts))}, {int((counts <= 3).sum()):,} identities have 1-3 images.", "",
        "Paper, Fig. 1: images per identity of the MS-Celeb-1M subset, sorted: a long tail from 217 images down "
        "to 1, 30.7% of the identities with 1-3 images (Table 1)."])


def table2(results: Results) -> str:
    models = ["softmax-A", "ab", "softmax-ABC", "abcd"]
    return "\n".join([model_table(results, models), "",
                      "## Claims", "", claims_table(results, [("AB > ABCD (the tail hurts softmax)", "ab", "abcd"),
                                                             ("AB > ABC", "ab", "softmax-ABC")]),
                      "", VERDICT_NOTE])


def table3(results: Results) -> str:
    models = ["abcd", "ab", "ab-abcd", "resampling", "center-loss", "range-loss", "ours", "arcface", "arcface-ours"]
    claims = [(f"ours > {LABELS[b]}", "ours", b) for b in ("abcd", "ab", "ab-abcd", "resampling", "center-loss",
                                                          "range-loss")]
    claims.append(("ArcFace + ours >= ArcFace", "arcface-ours", "arcface"))
    return "\n".join([model_table(results, models), "", "## Claims", "", claims_table(results, claims), "",
                      VERDICT_NOTE])


def table4(results: Results) -> str:
    models = ["abcd", "ours-nk0.25", "ours-nk0.5", "ours", "ours-nk2"]
    claims = [("1 x auto > 0.25 x auto", "ours", "ours-nk0.25"), ("1 x auto > 2 x auto", "ours", "ours-nk2"),
              ("1 x auto vs 0.5 x auto (paper: about equal)", "ours", "ours-nk0.5")]
    return "\n".join(["Paper: N_k = 1,800 / 3,600 / 7,200 (auto) / 14,400; baseline = ABCD. Ours (row 'Ours' = 1 x "
                      "the automatic N_k).", "", model_table(results, models), "", "## Claims", "",
                      claims_table(results, claims), "", VERDICT_NOTE])


def fig2(results: Results, faceset, thresholds, out: Path) -> str:
    from tailface.method.diagnostics import checkpoint_row_groups, norms_by_group, norms_table, plot_norms

    per_model: dict[str, dict] = {}
    for model, label in (("abcd", "ABCD softmax"), ("ours", "ours (dispersion)")):
        seeds = [s for s in results.seeds if cells.final_checkpoint(results.root, model, s).is_file()]
        if not seeds:
            continue
        groups: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}
        for s in seeds:
            weight, rows = checkpoint_row_groups(cells.final_checkpoint(results.root, model, s), faceset, thresholds)
            for g, stats in norms_by_group(weight, rows).items():
                groups.setdefault(g, []).append(stats["mean"])
                sizes[g] = int(stats["count"])  # classifier rows of the group (the same every seed)
        per_model[f"{label} (n={len(seeds)})"] = {g: {"mean": float(np.mean(v)), "std": float(np.std(v)),
                                                       "median": float(np.median(v)), "count": sizes[g]}
                                                   for g, v in groups.items()}
    if not per_model:
        return "(no finished ABCD or ours cell yet)"
    plot_norms(out / "fig2.png", per_model)
    return "\n".join(["Mean L2 norm of the classifier rows of each group: mean over seeds of the group's mean norm, "
                      "std and median over seeds of it; rows = the group's classifier rows.", "",
                      norms_table(per_model), "", "![row norms](fig2.png)", "",
                      "Paper, Fig. 2a: under plain softmax the rows of tail classes get smaller norms (a biased "
                      "boundary); the method is meant to correct it."])


def fig3(results: Results, out: Path, sizes: tuple[int, int]) -> str:
    curves = {}
    for model in ("uniform", "long-tail"):
        ms = list(results.metrics(model).values())
        if ms and "blufr" in ms[0]:
            o = ms[0]["blufr"]["openset_curve"]
            rank1 = np.mean([np.asarray(m["blufr"]["openset_curve"]["mean"])[o["rank"].index(1)] for m in ms], axis=0)
            curves[model] = (o["far"], rank1)
    if curves:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 4))
        for model, (far, rate) in curves.items():
            far = np.asarray(far)
            keep = far > 0
            ax.semilogx(far[keep], 100 * np.asarray(rate)[keep], label=f"{model} (n={len(results.metrics(model))})")
        ax.set_xlabel("false alarm rate")
        ax.set_ylabel("DIR at rank 1 (%)")
        ax.set_title("Open-set identification ROC on BLUFR")
        ax.legend()
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "fig3.png", dpi=120)
        plt.close(fig)
        plots_line = "![open-set ROC, uniform vs long-tail](fig3.png)"
    else:
        plots_line = "(no BLUFR curves yet)"
    return "\n".join([f"Both training sets: {sizes[0]:,} identities and {sizes[1]:,} images (uniform: "
                      f"{sizes[1] // sizes[0]} per identity; long-tail: power-law sizes), the same network and budget.",
                      "", model_table(results, ["uniform", "long-tail"]), "", plots_line, "", "## Claims", "",
                      claims_table(results, [("uniform > long-tail", "uniform", "long-tail")]), "",
                      "Paper, Fig. 3: on 400K images of 8,000 identities, the uniform set's open-set ROC lies above "
                      "the long-tail set's at every FAR.", "", VERDICT_NOTE])


def sweep(results: Results, faceset, thresholds, out: Path) -> str:
    """The premise as a curve: softmax on AB plus a growing share of the tail."""
    from tailface.data.groups import group_of_counts

    groups = group_of_counts(faceset.class_counts(), thresholds)
    n_c, n_d = int((groups == "C").sum()), int((groups == "D").sum())
    points = [("ab", 0), ("sweep-C25", round(0.25 * n_c)), ("sweep-C50", round(0.5 * n_c)), ("softmax-ABC", n_c),
              ("sweep-D25", n_c + round(0.25 * n_d)), ("sweep-D50", n_c + round(0.5 * n_d)), ("abcd", n_c + n_d)]
    metrics = _available(results, CLAIM_METRICS)
    lines = ["| training set | tail identities added | " + " | ".join(m.name for m in metrics) + " |",
             "|---|---:|" + "---:|" * len(metrics)]
    labels = {"ab": "AB", "sweep-C25": "AB + 25% of C", "sweep-C50": "AB + 50% of C", "softmax-ABC": "AB + C",
              "sweep-D25": "AB + C + 25% of D", "sweep-D50": "AB + C + 50% of D", "abcd": "ABCD"}
    for model, added in points:
        lines.append(f"| {labels[model]} | {added:,} | " + " | ".join(results.cell(model, m).text() for m in metrics)
                     + " |")
    lines.append(f"| ours (full set) | {n_c + n_d:,} | " + " | ".join(results.cell("ours", m).text() for m in metrics)
                 + " |")
    _plot_sweep(results, points, metrics, out / "sweep.png")
    claims = [("AB + 25% of C > AB (does a little tail hurt?)", "sweep-C25", "ab"),
              ("AB > ABCD", "ab", "abcd"), ("ours > ABCD", "ours", "abcd")]
    return "\n".join(lines + ["", "![tail sweep](sweep.png)", "", "## Claims", "", claims_table(results, claims), "",
                              VERDICT_NOTE])


def _plot_sweep(results: Results, points, metrics: list[Metric], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        xs, ys, es = [], [], []
        for model, added in points:
            c = results.cell(model, metric)
            if c.n:
                xs.append(added)
                ys.append(100 * c.mean)
                es.append(0 if c.n < 2 else 100 * c.std)
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label="softmax")
        ours = results.cell("ours", metric)
        if ours.n and points:
            ax.errorbar([points[-1][1]], [100 * ours.mean], yerr=[0 if ours.n < 2 else 100 * ours.std], marker="*",
                        markersize=12, linestyle="none", capsize=3, label="ours (full set)")
        ax.set_xlabel("tail identities added to AB")
        ax.set_ylabel(f"{metric.name} (%)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- tuning and probes: chosen on the BLUFR development split, never on the test trials --------------

DEV = Metric("dev VR@FAR=0.1%", lambda m: m["blufr"]["development"]["vr_far_0.1%"], None)


def _changes(model: str) -> str:
    variant = cells.VARIANTS.get(model)
    if variant is None:
        return "(as shipped)"
    parts = [f"{block}.{k}: {v}" for block, kv in variant.changes.items() for k, v in kv.items()]
    if variant.base != "ab":
        parts.append(f"method.base: {variant.base}")
    return ", ".join(parts) + f" ({variant.why})"


def variants_table(results: Results, reference: str, models: list[str]) -> str:
    """Each model's development-split score (the selection metric) and test figures, and its paired
    difference from ``reference`` on the development split; the best development mean is marked."""
    test = _available(results, CLAIM_METRICS)
    dev = {m: results.cell(m, DEV) for m in models}
    scored = [m for m in models if dev[m].n]
    best = max(scored, key=lambda m: dev[m].mean) if scored else None
    lines = ["| model | changes | " + DEV.name + " (selection) | " + " | ".join(f"test {m.name}" for m in test)
             + f" | dev: A - {LABELS.get(reference, reference)} [95%] | verdict |",
             "|---|---|---:|" + "---:|" * len(test) + "---|---|"]
    for model in models:
        if model == reference:
            diff, verdict = "(reference)", ""
        else:
            d = paired_difference(results.values(model, DEV), results.values(reference, DEV))
            diff, verdict = d.text(), d.verdict
        mark = " **(best dev)**" if model == best else ""
        lines.append(f"| {LABELS.get(model, model)}{mark} | {_changes(model)} | {dev[model].text()} | "
                     + " | ".join(results.cell(model, m).text() for m in test) + f" | {diff} | {verdict} |")
    return "\n".join(lines)


def tune(results: Results) -> str:
    parts = ["ArcFace (s 64, m 0.5) and range loss (lam 1e-3) collapsed on this set with the small network, and "
             "resampling fell far below ABCD (docs/results.md). Each setting is trained with the same data, network "
             "and budget; the one with the "
             "highest mean VR@FAR=0.1% on BLUFR's development split (devTrainIndex / devTestIndex, disjoint from "
             "the test trials' choice) is the one shipped in configs/baselines/celeba/ and used in Table 3. Test "
             "figures are shown, never used to choose."]
    for title, grid in cells.TUNED.items():
        parts += ["", f"## {title}", "", variants_table(results, grid[0], grid)]
    return "\n".join(parts + ["", VERDICT_NOTE])


def probes(results: Results) -> str:
    parts = ["Each probe changes one choice of the method (everything else as in `ours`) and is compared with "
             "`ours` on BLUFR's development split; ABCD softmax is shown for reference. A probe that beats `ours` "
             "on the development split is a candidate default; the test columns are reported, not used to choose. "
             "`renormalize_phi` acts only with a margin head, so it is probed on ArcFace + ours."]
    for of, variants in cells.PROBED.items():
        models = [of, *variants] + (["abcd"] if of == "ours" else [])
        parts += ["", f"## {LABELS.get(of, of)}", "", variants_table(results, of, models)]
    return "\n".join(parts + ["", VERDICT_NOTE])


SUPERCLASS_MODELS = ("ours", "ours-base-abcd", "ours-spherical")  # the method's clusterings: shipped, two probes


def superclasses(results: Results) -> str:
    """Step I's super classes measured on each finished cell (:mod:`tailface.evidence.superclasses`)."""
    from tailface.evidence.superclasses import cell_quality

    columns = [("k-means inertia / scikit-learn's", lambda q: q["inertia"] / q["sklearn_inertia"]
                if q["sklearn_inertia"] else math.nan, 1.0, 3),
               ("look-alike purity %", lambda q: q["look_alike_purity"], 100.0, 1),
               ("chance %", lambda q: q["chance_purity"], 100.0, 2),
               ("super-class accuracy %", lambda q: q["super_class_accuracy"], 100.0, 1),
               ("identity accuracy %", lambda q: q["identity_accuracy"], 100.0, 1)]
    lines = ["| model | group | classes -> super classes | " + " | ".join(c[0] for c in columns) + " |",
             "|---|---|---:|" + "---:|" * len(columns)]
    without_reference = False  # scikit-learn missing: no inertia to compare with
    for model in SUPERCLASS_MODELS:
        qualities = [cell_quality(cells.cell_dir(results.root, model, s)) for s in results.seeds
                     if cells.metrics_path(results.root, model, s).is_file()]
        for group in ("C", "D"):
            per_seed = [q[group] for q in qualities if group in q]
            if not per_seed:
                continue
            without_reference |= any(q["sklearn_inertia"] is None for q in per_seed)
            row = [LABELS.get(model, model), group, f"{per_seed[0]['classes']:,} -> {per_seed[0]['super_classes']:,}"]
            for _, get, scale, digits in columns:
                row.append(Cell(tuple(float(get(q)) for q in per_seed)).text(scale, digits))
            lines.append("| " + " | ".join(row) + " |")
    if len(lines) == 2:
        return "(no finished ours cell yet)"
    if without_reference:
        lines += ["", "(nan in the inertia column: scikit-learn is not installed here; "
                  "`pip install 'tailface[evidence]'` and rerun with `--report-only`.)"]
    return "\n".join([
        "Per tail group, on the base model's features that drove the clustering (mean +- std over seeds):", "",
        "- *k-means inertia / scikit-learn's*: the method's k-means against scikit-learn's KMeans (k-means++, 10 "
        "restarts) at the same k; above 1 = ours is worse;",
        "- *look-alike purity*: share of tail classes whose nearest other tail class (class means) is in the same "
        "super class, against *chance* (sum of squared super-class shares);",
        "- *super-class accuracy* vs *identity accuracy*: images (of classes with >= 2) assigned to the nearest "
        "super-class centroid, or to the nearest class mean, the image left out (the prototype stage's task "
        "against the identity task on the same features).", "", *lines])
