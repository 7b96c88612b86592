"""The whole aggregate-and-disperse pipeline, one resumable stage per folder under ``out/``.

    base/        plain softmax on head classes (the AB baseline)          final.pt, train.csv
    features/    base-model features of every tail image                  tail.npz
    cluster/     tail class means -> super classes (+ summary)            super_classes.json, summary.md, sizes.png
    prototype/   head classes + super classes (Eq. 5)                     final.pt
    dispersion/  dispersion softmax over all classes (Eqs. 6/8)           final.pt
    abcd/        (option) plain softmax on all classes, same budget        final.pt
    eval/<name>/ evaluate_checkpoint with eval.protocols                  metrics.json
    norms/       classifier row norms per group                           norms.md, norms.png, norms.json
    report.md    every stage summarised

A stage is skipped when its outputs exist; a training stage interrupted midway resumes from its
``last.pt`` (the trainer's resume).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from tailface.data.faceset import FaceSet
from tailface.data.groups import GroupThresholds
from tailface.errors import ConfigError
from tailface.method.aggregate import Aggregation, aggregate, load_aggregation, save_aggregation
from tailface.method.cluster_report import plot_sizes, summarize, summary_markdown
from tailface.method.config import MethodConfig, head_margin
from tailface.method.dispersion import create_dispersion_head
from tailface.method.partition import Partition, group_table, thresholds_from_config

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "method" / "synthetic.yaml"


def _log(msg: str) -> None:
    print(f"[tailface run] {msg}", flush=True)


@dataclass
class Experiment:
    doc: dict
    out: Path
    faceset: FaceSet
    part: Partition
    thresholds: GroupThresholds
    method: MethodConfig

    @property
    def model_block(self) -> dict:
        block = dict(self.doc.get("model") or {})
        if "name" not in block:
            raise ConfigError("model.name is required")
        return block

    def train_cfg(self, where: str = "train", **changes):
        from tailface.train.config import TrainConfig

        return TrainConfig.from_dict({**(self.doc.get("train") or {}), **changes}, where=where)

    @property
    def embedding_size(self) -> int:
        return int(self.model_block.get("embedding_size", 512))

    def image_size(self) -> int:
        from tailface.models import default_input_size

        cfg = self.train_cfg()
        return int(cfg.image_size or self.model_block.get("input_size") or default_input_size(self.model_block["name"]))

    def new_model(self):
        from tailface.train.checkpoint import build_model

        block = self.model_block
        return build_model(block.pop("name"), **block)


def _fit(exp: Experiment, stage: str, model, head, faceset: FaceSet, **changes) -> Path:
    from tailface.train.trainer import fit

    out_dir = exp.out / stage
    final = out_dir / "final.pt"
    if final.is_file():
        _log(f"{stage}: done ({final}), skipped")
        return final
    _log(f"{stage}: training on {len(faceset)} images of {faceset.num_classes} classes "
         f"({'resuming' if (out_dir / 'last.pt').is_file() else 'from the start'})")
    changes.update(getattr(exp.method, f"{stage}_train"))
    cfg = exp.train_cfg(where=f"train + method.{stage}_train", **changes)
    return Path(fit(model, head, faceset, cfg, out_dir))


def _head(exp: Experiment, num_classes: int):
    from tailface.train.checkpoint import build_head

    name, kwargs, _, _, _ = head_margin(exp.doc.get("head"))
    return build_head(name, exp.embedding_size, num_classes, **kwargs)


def _load_state(checkpoint: Path) -> dict:
    from tailface.train.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


def _model_from(checkpoint: Path):
    from tailface.train.checkpoint import load_model

    model, _ = load_model(checkpoint)
    return model.train()


def stage_base(exp: Experiment, base_epochs: int) -> Path:
    head_images = np.flatnonzero(np.isin(exp.faceset.labels, exp.part.head))
    head_set = exp.faceset.subset(head_images, relabel=True)  # labels = rank among head classes
    return _fit(exp, "base", exp.new_model(), _head(exp, exp.part.num_head), head_set, epochs=base_epochs)


def stage_features(exp: Experiment, base_ckpt: Path) -> Path:
    from tailface.eval.features import extract_features, save_features
    from tailface.train.checkpoint import load_model

    path = exp.out / "features" / "tail.npz"
    if path.is_file():
        _log(f"features: done ({path}), skipped")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tail_images = np.flatnonzero(np.isin(exp.faceset.labels, exp.part.tail))
    tail_set = exp.faceset.subset(tail_images, relabel=False)
    _log(f"features: {len(tail_set)} tail images through the base model")
    model, meta = load_model(base_ckpt)
    size = meta.get("image_size") or exp.image_size()
    size = int(size[0]) if isinstance(size, (list, tuple)) else int(size)
    feats = extract_features(model, tail_set, size, batch_size=exp.method.feature_batch_size)
    tmp = path.with_name("tail.tmp.npz")
    save_features(tmp, feats, tail_set.image_ids, tail_set.labels)
    os.replace(tmp, path)
    return path


def stage_cluster(exp: Experiment, features_path: Path) -> Aggregation:
    from tailface.eval.features import load_features

    folder = exp.out / "cluster"
    path = folder / "super_classes.json"
    if path.is_file():
        _log(f"cluster: done ({path}), skipped")
        return load_aggregation(path, exp.part)
    folder.mkdir(parents=True, exist_ok=True)
    loaded = load_features(features_path)
    feats, labels = loaded["features"], loaded["labels"]
    m = exp.method
    agg = aggregate(feats, labels, exp.part, num_super=m.num_super, ratio=m.ratio, normalize=m.normalize_means,
                    spherical=m.spherical, init=m.kmeans_init, niter=m.kmeans_iters,
                    seed=int((exp.doc.get("train") or {}).get("seed", 0)))
    (folder / "summary.md").write_text(summary_markdown(agg, exp.part) + "\n")
    (folder / "summary.json").write_text(json.dumps(summarize(agg, exp.part), indent=1))
    plot_sizes(folder / "sizes.png", agg, exp.part)
    save_aggregation(path, agg, exp.part, exp.faceset.class_names)  # last: marks the stage done
    _log(f"cluster: {exp.part.num_tail} tail classes -> {agg.num_super} super classes ({path})")
    return agg


def stage_prototype(exp: Experiment, agg: Aggregation, base_ckpt: Path, epochs: int) -> Path:
    labels = exp.part.prototype_label_of_class(agg.super_of_tail)[exp.faceset.labels]
    names = [exp.faceset.class_names[c] for c in exp.part.head] + [f"super{s:05d}" for s in range(agg.num_super)]
    proto_set = exp.faceset.with_labels(labels, names)
    model = _model_from(base_ckpt) if exp.method.prototype_from_base else exp.new_model()
    return _fit(exp, "prototype", model, _head(exp, len(names)), proto_set, epochs=epochs)


def stage_dispersion(exp: Experiment, agg: Aggregation, proto_ckpt: Path, epochs: int, lr: float) -> Path:
    part = exp.part
    labels = part.dispersion_label_of_class()[exp.faceset.labels]
    names = [exp.faceset.class_names[c] for c in np.concatenate([part.head, part.tail])]
    disp_set = exp.faceset.with_labels(labels, names)
    _, _, margin, scale, margin_value = head_margin(exp.doc.get("head"))
    proto_weight = _load_state(proto_ckpt)["head"]["weight"]
    head = create_dispersion_head(exp.embedding_size, part.num_head, agg.super_of_tail, prototype_weight=proto_weight,
                                  margin=margin, scale=scale, margin_value=margin_value, mode=exp.method.mode,
                                  renormalize_phi=exp.method.renormalize_phi)
    return _fit(exp, "dispersion", _model_from(proto_ckpt), head, disp_set, epochs=epochs, lr=lr)


def stage_abcd(exp: Experiment, epochs: int) -> Path:
    return _fit(exp, "abcd", exp.new_model(), _head(exp, exp.faceset.num_classes), exp.faceset, epochs=epochs)


def stage_eval(exp: Experiment, checkpoints: dict[str, Path]) -> dict[str, dict]:
    from tailface.eval.api import evaluate_checkpoint

    protocols = list((exp.doc.get("eval") or {}).get("protocols") or [])
    results = {}
    for name, ckpt in checkpoints.items():
        folder = exp.out / "eval" / name
        metrics_path = folder / "metrics.json"
        if not protocols:
            continue
        if metrics_path.is_file():
            _log(f"eval {name}: done ({metrics_path}), skipped")
        else:
            _log(f"eval {name}: {', '.join(protocols)}")
            evaluate_checkpoint(ckpt, protocols, folder)
        results[name] = json.loads(metrics_path.read_text())
    return results


def stage_norms(exp: Experiment, checkpoints: dict[str, Path]) -> dict[str, dict]:
    from tailface.method.diagnostics import checkpoint_row_groups, norms_by_group, norms_table, plot_norms

    folder = exp.out / "norms"
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, ckpt in checkpoints.items():
        weight, groups = checkpoint_row_groups(ckpt, exp.faceset, exp.thresholds)
        results[name] = norms_by_group(weight, groups)
    (folder / "norms.json").write_text(json.dumps(results, indent=1))
    (folder / "norms.md").write_text(norms_table(results) + "\n")
    plot_norms(folder / "norms.png", results)
    return results


def _last_row(csv_path: Path) -> dict:
    if not csv_path.is_file():
        return {}
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else {}


def _metrics_table(metrics: dict[str, dict]) -> str:
    """Markdown: one row per (protocol, metric), one column per evaluated model (values in %)."""
    from tailface.eval.api import summary_rows

    per_model = {name: {(p, m): v for p, m, v in summary_rows(doc)} for name, doc in metrics.items()}
    keys = list(dict.fromkeys(k for rows in per_model.values() for k in rows))
    if not keys:
        return "(no metrics)"
    lines = ["| protocol | metric (%) | " + " | ".join(per_model) + " |", "|---|---|" + "---:|" * len(per_model)]
    for key in keys:
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(rows.get(key, "-") for rows in per_model.values()) + " |")
    return "\n".join(lines)


def write_report(exp: Experiment, agg: Aggregation, epochs: tuple[int, int, int], metrics: dict, norms: dict | None) -> Path:
    from tailface.method.diagnostics import norms_table

    out = exp.out
    lines = [f"# tailface run: aggregate-and-disperse on {exp.faceset.source}", "",
             f"Output folder: `{out}`. Stages: base {epochs[0]} epochs, prototype {epochs[1]}, "
             f"dispersion {epochs[2]} (mode {exp.method.mode}, head {head_margin(exp.doc.get('head'))[0]}).", "",
             "## Data groups", "", group_table(exp.part), "",
             f"Head: {exp.part.num_head} classes, {exp.part.head_images()} images; "
             f"tail: {exp.part.num_tail} classes, {exp.part.tail_images()} images.", "",
             "## Step I: clustering", "",
             f"{exp.part.num_tail} tail classes -> {agg.num_super} super classes "
             f"(requested {agg.info.get('num_super_requested')}, init {agg.info.get('init')}; per group: "
             + ", ".join(f"{g}: {s['classes']} classes -> {s['clusters']}" for g, s in agg.info.get("groups", {}).items())
             + ").", "", summary_markdown(agg, exp.part), "", "![super-class sizes](cluster/sizes.png)", "",
             "## Training (last logged row of each stage's train.csv)", "",
             "| stage | last row |", "|---|---|"]
    for stage in ("base", "prototype", "dispersion", "abcd"):
        row = _last_row(out / stage / "train.csv")
        if row:
            lines.append(f"| {stage} | " + ", ".join(f"{k}={v}" for k, v in row.items()) + " |")
    lines += ["", "## Evaluation", "",
              "ours = dispersion model; base = the AB baseline (head classes only); abcd = plain softmax "
              "on all classes with the method's budget.", "",
              _metrics_table(metrics) if metrics else "(no evaluation protocols configured)", ""]
    if norms:
        lines += ["## Classifier row norms per group", "",
                  "Paper, Fig. 2a: under plain softmax the rows of tail classes (C, D) get smaller norms.", "",
                  norms_table(norms), "", "![row norms](norms/norms.png)", ""]
    path = out / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path


def run_pipeline(doc: dict, out: str | Path, data: str | None = None) -> Path:
    """Run (or resume) every stage for the experiment ``doc``; returns the path of report.md."""
    from tailface.data.open import open_faceset

    doc = dict(doc)
    data_block = dict(doc.get("data") or {})
    if data is not None:
        data_block["train"] = data
    doc["data"] = data_block
    method = MethodConfig.from_dict(doc.get("method"))
    head_margin(doc.get("head"))  # validate early
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    faceset = open_faceset(data_block.get("train"), **dict(data_block.get("options") or {}))
    thresholds = thresholds_from_config(data_block.get("groups"))
    part = Partition.from_faceset(faceset, thresholds)
    exp = Experiment(doc, out, faceset, part, thresholds, method)
    train_epochs = exp.train_cfg().epochs
    epochs = method.epochs(train_epochs)
    lr = method.dispersion_lr or 0.2 * exp.train_cfg().lr
    torch.manual_seed(int((doc.get("train") or {}).get("seed", 0)))

    base = stage_base(exp, epochs[0])
    features = stage_features(exp, base)
    agg = stage_cluster(exp, features)
    proto = stage_prototype(exp, agg, base, epochs[1])
    ours = stage_dispersion(exp, agg, proto, epochs[2], lr)
    abcd = stage_abcd(exp, epochs[1] + epochs[2]) if method.abcd_baseline else None

    available = {"ours": ours, "base": base, "abcd": abcd, "prototype": proto}
    to_eval = {k: available[k] for k in method.evaluate if available.get(k) is not None}
    metrics = stage_eval(exp, to_eval)
    norms_ckpts = {"ours (dispersion)": ours}
    if abcd is not None:
        norms_ckpts = {"ABCD softmax": abcd, **norms_ckpts}
    norms = stage_norms(exp, norms_ckpts)
    report = write_report(exp, agg, epochs, metrics, norms)
    _log(f"report: {report}")
    return report
