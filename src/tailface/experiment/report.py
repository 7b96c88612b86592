"""``report.md`` of an aggregate-and-disperse run: groups, clustering, training, evaluation, norms.

A run trains each model once, with one seed: the report says so where its figures are, ranks the
models of that seed from the numbers themselves (no ordering is written in advance) and names the
commands that answer with seeds (``tailface study``, ``tailface reproduce``)."""

from __future__ import annotations

import csv
from pathlib import Path

from tailface.atomic import write_text
from tailface.data.faceset import FaceSet
from tailface.eval.api import summary_rows
from tailface.experiment.config import ExperimentConfig
from tailface.method.aggregate import Aggregation
from tailface.method.cluster_report import summary_markdown
from tailface.method.diagnostics import norms_table
from tailface.method.partition import Partition, group_table


def _last_row(csv_path: Path) -> dict:
    if not csv_path.is_file():
        return {}
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else {}


def metrics_table(metrics: dict[str, dict]) -> str:
    """Markdown: one row per (protocol, metric), one column per evaluated model (values in %)."""
    per_model = {name: {(p, m): v for p, m, v in summary_rows(doc)} for name, doc in metrics.items()}
    keys = list(dict.fromkeys(k for rows in per_model.values() for k in rows))
    if not keys:
        return "(no metrics)"
    lines = ["| protocol | metric (%) | " + " | ".join(per_model) + " |", "|---|---|" + "---:|" * len(per_model)]
    for key in keys:
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(rows.get(key, "-") for rows in per_model.values()) + " |")
    return "\n".join(lines)


def seed_note(cfg: ExperimentConfig) -> str:
    """One line: what one run with one seed can tell, and the commands that answer with seeds."""
    return (f"one run, one seed (train.seed {cfg.seed}): its tables rank the models of this seed and order "
            f"nothing; `tailface study {cfg.data.train} --seeds 3` (or `tailface reproduce table3 --seeds 3`) "
            "answers with seeds: paired differences over seeds, 95% intervals, a verdict")


def _value(text: str) -> float | None:
    """The figure a summary cell starts with (``"51.80"``, ``"1.19 +- 0.08 (...)"``), None for text."""
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        return None


def seed_ranking(metrics: dict[str, dict]) -> list[str]:
    """One line per (protocol, metric) with two models or more: the models of this run, highest
    figure first (every figure of the summary tables is higher-is-better; ``=`` for figures equal as
    printed), and the rank of ``ours``."""
    per_model = {name: {(p, m): v for p, m, v in summary_rows(doc)} for name, doc in metrics.items()}
    lines = []
    for key in dict.fromkeys(k for rows in per_model.values() for k in rows):
        values = {name: v for name, rows in per_model.items() if key in rows and (v := _value(rows[key])) is not None}
        if len(values) < 2:
            continue
        shown = {name: f"{v:.2f}" for name, v in values.items()}  # ties: equal as printed
        order = sorted(values, key=lambda name: -float(shown[name]))
        text = f"{order[0]} {shown[order[0]]}" + "".join(
            f" {'=' if shown[b] == shown[a] else '>'} {b} {shown[b]}" for a, b in zip(order, order[1:]))
        rank = ""
        if "ours" in values:
            above = sum(float(shown[n]) > float(shown["ours"]) for n in order)
            tied = sum(shown[n] == shown["ours"] for n in order) > 1
            rank = f" (ours {'tied ' if tied else ''}{above + 1} of {len(order)})"
        lines.append(f"- {key[0]} {key[1]}: {text}{rank}")
    return lines


def tail_norms_finding(norms: dict[str, dict]) -> str:
    """Whether, for each model of ``norms`` (:func:`~tailface.method.diagnostics.norms_by_group`),
    the mean row norm of every tail group (C, D) is below that of every head group (A, B); from the numbers."""
    found = []
    for model, groups in norms.items():
        head = [groups[g]["mean"] for g in "AB" if g in groups]
        tail = [groups[g]["mean"] for g in "CD" if g in groups]
        if not head or not tail:
            found.append(f"{model}: no head or no tail rows")
            continue
        smaller = max(tail) < min(head)
        found.append(f"{model}: tail rows {'smaller' if smaller else 'not all smaller'} (mean norm C/D "
                     + "/".join(f"{t:.3g}" for t in tail) + " vs A/B " + "/".join(f"{h:.3g}" for h in head) + ")")
    return "; ".join(found)


def seed_section(cfg: ExperimentConfig, metrics: dict[str, dict]) -> list[str]:
    """The report's lines on what this run's evaluation can tell."""
    lines = ["### What one run can tell", "",
             f"**Each model above was trained once, with one seed (train.seed {cfg.seed}): this table orders "
             "nothing.** Another seed, or any change of the initial weights or of the k-means start, moves "
             "such figures by several points, often more than the gaps between the models; a difference "
             "here is not evidence that one model is better.", ""]
    ranking = seed_ranking(metrics)
    if ranking:
        lines += ["On this seed only, highest first:", "", *ranking, ""]
    lines += ["For an answer with seeds (the paired difference over seeds with its 95% interval and a verdict: "
              "holds, reversed or within noise):", "",
              f"- `tailface study {cfg.data.train} --seeds 3`: AB, ABCD, ours and the tail sweep on held-out "
              "identities of this data;",
              "- `tailface reproduce table3 --seeds 3` (`--profile synthetic` on the built-in data): the "
              "paper's Table 3 with every claimed ordering checked.", ""]
    return lines


def write_report(cfg: ExperimentConfig, out: Path, faceset: FaceSet, part: Partition, agg: Aggregation,
                 metrics: dict, norms: dict | None) -> Path:
    assert cfg.method is not None
    epochs = [cfg.stage_train(stage).epochs for stage in ("base", "prototype", "dispersion")]
    lines = [f"# tailface run: aggregate-and-disperse on {faceset.source}", "",
             f"Output folder: `{out}`. Stages: base {epochs[0]} epochs, prototype {epochs[1]}, "
             f"dispersion {epochs[2]} (mode {cfg.method.mode}, head {cfg.head.name}).", "",
             f"> Note: {seed_note(cfg)}.", "",
             "## Data groups", "", group_table(part), "",
             f"Head: {part.num_head} classes, {part.head_images()} images; "
             f"tail: {part.num_tail} classes, {part.tail_images()} images.", "",
             "## Step I: clustering", "",
             f"{part.num_tail} tail classes -> {agg.num_super} super classes "
             f"(requested {agg.info.get('num_super_requested')}, init {agg.info.get('init')}; per group: "
             + ", ".join(f"{g}: {s['classes']} classes -> {s['clusters']}"
                         for g, s in agg.info.get("groups", {}).items())
             + ").", "", summary_markdown(agg, part), "", "![super-class sizes](cluster/sizes.png)", "",
             "## Training (last logged row of each stage's train.csv)", "",
             "| stage | last row |", "|---|---|"]
    for stage in ("base", "prototype", "dispersion", "abcd"):
        row = _last_row(out / stage / "train.csv")
        if row:
            lines.append(f"| {stage} | " + ", ".join(f"{k}={v}" for k, v in row.items()) + " |")
    lines += ["", "## Evaluation", "",
              "ours = dispersion model; base = the AB baseline (head classes only); abcd = plain softmax "
              "on all classes with the method's budget.", "",
              metrics_table(metrics) if metrics else "(no evaluation protocols configured)", ""]
    if metrics:
        lines += seed_section(cfg, metrics)
    if norms:
        lines += ["## Classifier row norms per group", "",
                  "Paper, Fig. 2a: under plain softmax the rows of tail classes (C, D) get smaller norms. "
                  "Here, on this seed: " + tail_norms_finding(norms) + ".", "",
                  norms_table(norms), "", "![row norms](norms/norms.png)", ""]
    path = out / "report.md"
    write_text(path, "\n".join(lines))
    return path
