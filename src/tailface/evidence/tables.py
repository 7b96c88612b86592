"""What the reproduce targets share: the finished cells' metrics (:class:`Results`), the paper's
figures, the model table and the claims table in the paper's layout (every cell mean +- std over
seeds, a verdict for each claimed ordering), the variants' table (tune, probes), and the same
numbers as data (``*_numbers``, for ``OUT/<name>.json``).

A cell that has not finished for a seed is left out of that seed (the table says how many seeds
each cell has); a missing cell is shown as ``-`` (``null`` in the data), never filled in. The data
hold fractions as the metrics do (the tables show percent); the paper's figures are in percent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.eval.thresholds import false_alarm_counts
from tailface.evidence import cells, methods
from tailface.evidence.stats import Cell, PairedDifference, paired_difference

# The paper's figures (Ma et al. 2020, Tables 2-4; ResNet-34 on 1.1M MS-Celeb-1M images; MegaFace
# rank-1 with 1M distractors), in percent.
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
          "ours-nk0.5": "0.5 x auto", "ours-nk2": "2 x auto", "uniform": "uniform", "long-tail": "long-tail",
          "logit-adjusted": "Logit-adjusted", "ldam-drw": "LDAM-DRW"}
LABELS |= {m: label for m, label in methods.LABELS.items() if m not in LABELS}  # issue 21's rows, on both sets


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


def _development(m: dict) -> float:
    """The selection score: VR@FAR=0.1% on the held-out training identities where a cell has them
    (a profile with ``data.holdout`` and the ``heldout`` protocol: ``cpu-heldout``), else on BLUFR's
    development split."""
    return m["heldout"]["vr_far_0.1%"] if "heldout" in m else m["blufr"]["development"]["vr_far_0.1%"]


DEV = Metric("dev VR@FAR=0.1%", _development, None)  # tune, probes


def trial_std(m: dict, key: str = "vr_far_0.1%") -> float:
    """The spread over BLUFR's 10 trials of one model (not a seed spread)."""
    return m["blufr"]["report"][key]["std"] if "blufr" in m else math.nan


@dataclass
class Results:
    """The finished cells under ``root`` (a run folder); a cell missing there is read from
    ``archive`` (``tailface reproduce --archive``, :mod:`tailface.evidence.archive`) when given."""

    root: Path
    seeds: list[int]
    archive: Path | None = None

    def metrics_file(self, model: str, seed: int) -> Path | None:
        """The cell's ``metrics.json`` in the run folder, else in the archive; None if neither."""
        for root in (self.root, self.archive):
            if root is not None and (path := cells.metrics_path(root, model, seed)).is_file():
                return path
        return None

    def metrics(self, model: str) -> dict[int, dict]:
        out = {}
        for seed in self.seeds:
            path = self.metrics_file(model, seed)
            if path is not None:
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


def available(results: Results, metrics: list[Metric]) -> list[Metric]:
    """The metrics some cell has (the synthetic profile has no MegaFace proxy)."""
    models = [m for m in cells.MODELS if results.metrics(m)]
    return [metric for metric in metrics if any(results.values(m, metric) for m in models)] or metrics[:2]


def model_table(results: Results, models: Iterable[str], metrics: list[Metric] | None = None) -> str:
    metrics = available(results, metrics or METRICS)
    head = "| model | " + " | ".join(f"{m.name} (ours) | paper" for m in metrics) + " | BLUFR trial std (VR) |"
    lines = [head, "|---|" + "---:|---:|" * len(metrics) + "---:|"]
    for model in models:
        row = [LABELS.get(model, model)]
        for metric in metrics:
            paper = PAPER.get(model)
            row += [results.cell(model, metric).text(),
                    f"{paper[metric.paper]:.2f}" if paper and metric.paper is not None else "-"]
        spreads = _trial_spreads(results, model)
        row.append(f"{100 * np.mean(spreads):.2f}" if spreads else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines + ["", TRIAL_STD_NOTE])


def _trial_spreads(results: Results, model: str) -> list[float]:
    spreads = [trial_std(m) for m in results.metrics(model).values()]
    return [s for s in spreads if not math.isnan(s)]


def claims_table(results: Results, claims: Iterable[tuple[str, str, str]], source: str = "paper") -> str:
    """``claims``: (text, model A, model B) for "A > B"; one row per claim and metric. ``source``:
    whose claims they are (the first column's heading)."""
    lines = [f"| claim ({source}) | metric | A - B, mean [95% interval] over paired seeds | verdict |",
             "|---|---|---|---|"]
    for text, a, b in claims:
        for metric in available(results, CLAIM_METRICS):
            d = paired_difference(results.values(a, metric), results.values(b, metric))
            lines.append(f"| {text} | {metric.name} | {d.text()} | {d.verdict} |")
    return "\n".join(lines)


VERDICT_NOTE = ("Verdicts: *holds* = the 95% t-interval of the paired difference over seeds lies above 0; "
                "*reversed* = below 0; *within noise* = it contains 0; *one seed* = a single seed, no interval: "
                "it cannot be told from noise; *not run yet* = no seed of both. Cells: mean +- std over seeds "
                "(n = seeds finished).")
# the legend of model_table's last column, under that table only (pages without the column do not carry it)
TRIAL_STD_NOTE = ("BLUFR trial std (VR): the spread over BLUFR's 10 test trials (mean over seeds), reported apart "
                  "from the seed spread.")


@dataclass(frozen=True)
class DirResolution:
    """What DIR@FAR=1% rests on in a held-out (``tailface study``) or synthetic evaluation: its genuine
    probes (one probe = ``100 / genuine`` points) and the impostor probes whose scores set its
    threshold (the ``false_alarms``-th highest of them, ``round(1% x impostors)``)."""

    genuine: int
    impostors: int

    @property
    def points(self) -> float:
        return 100.0 / self.genuine

    @property
    def false_alarms(self) -> int:
        return int(false_alarm_counts([0.01], self.impostors)[0])

    def short(self) -> str:
        return f"one probe = {self.points:.2f} points"

    def text(self) -> str:
        if self.false_alarms == 0:
            threshold = (f"with {self.impostors} impostor probes FAR=1% allows no false alarm, so its threshold "
                         "lies above the highest impostor score")
        else:
            threshold = (f"its threshold is the {_ordinal(self.false_alarms)} highest of {self.impostors} impostor "
                         f"probe scores (FAR=1% = {self.false_alarms} false alarm{'s' * (self.false_alarms > 1)}), "
                         "so one impostor probe can move it")
        return f"DIR@FAR=1% resolution: {self.genuine} genuine probes, {self.short()}; {threshold}."


def _ordinal(k: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


def dir_resolution(results: Results, models: Iterable[str]) -> DirResolution | None:
    """The probes behind DIR@FAR=1% (the same test set for every cell), from the first finished cell of
    ``models`` evaluated by the held-out or synthetic protocol; None for BLUFR (10 trials of their own)
    or when no cell has finished."""
    for model in models:
        for m in results.metrics(model).values():
            openset = (m.get("heldout") or m.get("synthetic") or {}).get("openset") if "blufr" not in m else None
            if openset and openset.get("n_genuine_probes"):
                return DirResolution(int(openset["n_genuine_probes"]), int(openset["n_impostor_probes"]))
    return None


# -- the same numbers as data --------------------------------------------------------------------

def cell_numbers(values: dict[int, float]) -> dict:
    """One cell: every seed's value, and n, mean and std (null for one seed) as the table shows them."""
    cell = Cell(tuple(values.values()))
    return {"seeds": {str(s): v for s, v in values.items()}, "n": cell.n, "mean": cell.mean, "std": cell.std}


def difference_numbers(d: PairedDifference) -> dict:
    """A paired difference A - B: seeds paired, mean, std, the 95% interval and the verdict."""
    return {"n": d.n, "mean": d.mean, "std": d.std, "low": d.low, "high": d.high, "verdict": d.verdict}


def model_numbers(results: Results, models: Iterable[str], metrics: list[Metric] | None = None) -> dict:
    """The numbers of :func:`model_table`: per model its label, per metric its cell and the paper's
    figure (percent), and the BLUFR trial spread of each seed."""
    metrics = available(results, metrics or METRICS)
    out = {}
    for model in models:
        paper = PAPER.get(model)
        out[model] = {"label": LABELS.get(model, model), "metrics": {
            metric.name: {**cell_numbers(results.values(model, metric)),
                          "paper_percent": paper[metric.paper] if paper and metric.paper is not None else None}
            for metric in metrics},
            "blufr_trial_std": {str(s): trial_std(m) for s, m in results.metrics(model).items()}}
    return out


def claim_numbers(results: Results, claims: Iterable[tuple[str, str, str]]) -> list[dict]:
    """The numbers of :func:`claims_table`: one entry per claim and metric."""
    return [{"claim": text, "a": a, "b": b, "metric": metric.name,
             **difference_numbers(paired_difference(results.values(a, metric), results.values(b, metric)))}
            for text, a, b in claims for metric in available(results, CLAIM_METRICS)]


# -- variants (tune, probes): chosen on the BLUFR development split, never on the test trials -------

def _changes(model: str) -> str:
    variant = cells.VARIANTS.get(model)
    if variant is None:
        return "(as shipped)"
    parts = [f"{block}.{k}: {v}" for block, kv in variant.changes.items() for k, v in kv.items()]
    if variant.base != "ab":
        parts.append(f"method.base: {variant.base}")
    return ", ".join(parts) + f" ({variant.why})"


def _best_dev(results: Results, models: list[str]) -> str | None:
    dev = {m: results.cell(m, DEV) for m in models}
    scored = [m for m in models if dev[m].n]
    return max(scored, key=lambda m: dev[m].mean) if scored else None


def variants_table(results: Results, reference: str, models: list[str]) -> str:
    """Each model's development score (the selection metric) and test figures, its paired difference
    from ``reference`` on the development data, and the best development mean's paired difference
    from it (is the best told from this setting?); the best development mean is marked."""
    test = available(results, CLAIM_METRICS)
    best = _best_dev(results, models)
    shown = LABELS.get(best, best) if best else "best"
    lines = ["| model | changes | " + DEV.name + " (selection) | " + " | ".join(f"test {m.name}" for m in test)
             + f" | dev: A - {LABELS.get(reference, reference)} [95%] | verdict | dev: {shown} - A [95%] | verdict |",
             "|---|---|---:|" + "---:|" * len(test) + "---|---|---|---|"]
    for model in models:
        diff, verdict = _dev_difference(results, model, reference, "(reference)")
        above, above_verdict = _dev_difference(results, best, model, "(best)") if best else ("-", "")
        mark = " **(best dev)**" if model == best else ""
        lines.append(f"| {LABELS.get(model, model)}{mark} | {_changes(model)} | {results.cell(model, DEV).text()} | "
                     + " | ".join(results.cell(model, m).text() for m in test)
                     + f" | {diff} | {verdict} | {above} | {above_verdict} |")
    return "\n".join(lines)


def _dev_difference(results: Results, a: str, b: str, same: str) -> tuple[str, str]:
    """``a - b`` on the development score over the paired seeds, as (text, verdict); ``same`` when a is b."""
    if a == b:
        return same, ""
    d = paired_difference(results.values(a, DEV), results.values(b, DEV))
    return d.text(), d.verdict


def variants_numbers(results: Results, reference: str, models: list[str]) -> dict:
    """The numbers of :func:`variants_table`: the reference, the best development mean, and per model
    its changes, its development and test cells, its development difference from the reference and
    the best one's development difference from it."""
    best = _best_dev(results, models)
    return {"reference": reference, "best_dev": best, "models": {
        model: {"label": LABELS.get(model, model), "changes": _changes(model),
                "metrics": {m.name: cell_numbers(results.values(model, m))
                            for m in [DEV, *available(results, CLAIM_METRICS)]},
                "dev_difference": None if model == reference else difference_numbers(
                    paired_difference(results.values(model, DEV), results.values(reference, DEV))),
                "best_minus_this": None if best is None or best == model else difference_numbers(
                    paired_difference(results.values(best, DEV), results.values(model, DEV)))}
        for model in models}}

