"""``report.md`` of an aggregate-and-disperse run: groups, clustering, training, evaluation, norms."""

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


def write_report(cfg: ExperimentConfig, out: Path, faceset: FaceSet, part: Partition, agg: Aggregation,
                 metrics: dict, norms: dict | None) -> Path:
    assert cfg.method is not None
    epochs = [cfg.stage_train(stage).epochs for stage in ("base", "prototype", "dispersion")]
    lines = [f"# tailface run: aggregate-and-disperse on {faceset.source}", "",
             f"Output folder: `{out}`. Stages: base {epochs[0]} epochs, prototype {epochs[1]}, "
             f"dispersion {epochs[2]} (mode {cfg.method.mode}, head {cfg.head.name}).", "",
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
    if norms:
        lines += ["## Classifier row norms per group", "",
                  "Paper, Fig. 2a: under plain softmax the rows of tail classes (C, D) get smaller norms.", "",
                  norms_table(norms), "", "![row norms](norms/norms.png)", ""]
    path = out / "report.md"
    write_text(path, "\n".join(lines))
    return path
