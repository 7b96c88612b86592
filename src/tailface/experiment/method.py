"""The aggregate-and-disperse experiment kind (a config with a ``method`` block): its stages,
one folder each under ``out/``::

    base/        plain softmax on head classes (the AB baseline)          final.pt, train.csv
    features/    base-model features of every tail image                  tail.npz
    cluster/     tail class means -> super classes (+ summary)            super_classes.json, summary.md, sizes.png
    prototype/   head classes + super classes (Eq. 5)                     final.pt
    dispersion/  dispersion softmax over all classes (Eqs. 6/8)           final.pt
    abcd/        (option) plain softmax on all classes, same budget        final.pt
    eval/<name>/ evaluate_checkpoint with eval.protocols                  metrics.json
    norms/       classifier row norms per group                           norms.md, norms.png, norms.json
    report.md    every stage summarised
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch.nn as nn

from tailface.atomic import write_text
from tailface.data.faceset import FaceSet
from tailface.data.training_set import select_groups
from tailface.errors import ConfigError
from tailface.eval.embedder import load_embedder
from tailface.eval.features import load_features, save_features
from tailface.experiment.config import ExperimentConfig
from tailface.experiment.kinds import ExperimentKind, KindBlock, register_kind
from tailface.experiment.report import write_report
from tailface.experiment.stages import Stage, say
from tailface.experiment.training import eval_stage, input_name, new_head, new_model, stage_class_stats, train_stage
from tailface.fingerprints import config_print, faceset_print, file_print
from tailface.heads.base import margin_heads
from tailface.method.aggregate import aggregate, auto_num_super, load_aggregation, save_aggregation
from tailface.method.cluster_report import plot_sizes, summarize, summary_markdown
from tailface.method.config import MethodConfig
from tailface.method.diagnostics import checkpoint_row_groups, norms_by_group, norms_table, plot_norms
from tailface.method.dispersion import create_dispersion_head
from tailface.method.partition import Partition
from tailface.method.sharded_dispersion import create_sharded_dispersion_head
from tailface.train.checkpoint import load_checkpoint, load_model
from tailface.train.config import TrainConfig


class MethodStages:
    """The method's stages over one training set; each stage reads its inputs from the files that
    earlier stages wrote, so any of them can be the first to run after a restart."""

    def __init__(self, cfg: ExperimentConfig, out: Path, faceset: FaceSet, command: str = "run"):
        assert cfg.method is not None
        self.cfg, self.method, self.out, self.faceset, self.command = cfg, cfg.method, out, faceset, command
        self.part = Partition.from_faceset(faceset, cfg.data.groups)
        self.ckpt = {stage: out / stage / "final.pt" for stage in cfg.method.stage_names()}
        if not cfg.method.trains_base:
            self.ckpt["base"] = Path(cfg.method.base)
        self.features_path = out / "features" / "tail.npz"
        self.cluster_path = out / "cluster" / "super_classes.json"

    def stages(self) -> list[Stage]:
        cfg, out, ckpt = self.cfg, self.out, self.ckpt
        m = self.method
        stages = [
            train_stage("base", out / "base", cfg.stage_train("base"), self.base_set,
                        lambda data: (new_model(cfg), new_head(cfg, stage_class_stats(cfg, data))),
                        command=self.command, validation=cfg.eval.during_training, settings={"base": m.base}),
        ] if self.method.trains_base else []
        from_base = (ckpt["base"],) if m.prototype_from_base else ()
        stages += [
            Stage("features", self.features_path, self.extract_tail_features, (ckpt["base"],), main_only=True,
                  fingerprints=self.features_prints),
            Stage("cluster", self.cluster_path, self.cluster, (self.features_path,), main_only=True,
                  fingerprints=self.cluster_prints),
            train_stage("prototype", out / "prototype", cfg.stage_train("prototype"), self.prototype_set,
                        self.prototype_modules, inputs=(self.cluster_path, *from_base), command=self.command,
                        validation=cfg.eval.during_training, settings={"prototype_from_base": m.prototype_from_base}),
            train_stage("dispersion", out / "dispersion", cfg.stage_train("dispersion"), self.dispersion_set,
                        self.dispersion_modules, inputs=(ckpt["prototype"], self.cluster_path), command=self.command,
                        validation=cfg.eval.during_training,
                        settings={"mode": m.mode, "renormalize_phi": m.renormalize_phi}),
        ]
        if "abcd" in ckpt:
            stages.append(train_stage("abcd", out / "abcd", cfg.stage_train("abcd"), lambda: self.faceset,
                                      lambda data: (new_model(cfg), new_head(cfg, stage_class_stats(cfg, data))),
                                      command=self.command, validation=cfg.eval.during_training))
        models = self.evaluated_models()
        if cfg.eval.protocols:
            stages += [eval_stage(f"eval {name}", path, out / "eval" / name, cfg, self.command)
                       for name, path in models.items()]
        norms_inputs = tuple(self.norm_models().values())
        stages.append(Stage("norms", out / "norms" / "norms.json", self.norms, norms_inputs, derived=True,
                            main_only=True, fingerprints=lambda: self.file_prints(norms_inputs)))
        metrics = tuple(out / "eval" / name / "metrics.json" for name in models) if cfg.eval.protocols else ()
        report_inputs = (self.cluster_path, out / "norms" / "norms.json", *metrics)
        stages.append(Stage("report", out / "report.md", self.report, report_inputs, derived=True, main_only=True,
                            fingerprints=lambda: self.file_prints(report_inputs)))
        return stages

    # -- what the stages that do not train read (their records: tailface.fingerprints) -----------

    def file_prints(self, paths: tuple[Path, ...]) -> dict[str, dict]:
        return {input_name(p, self.out): file_print(p) for p in paths}

    def tail_set(self) -> FaceSet:
        return self.faceset.subset(np.flatnonzero(np.isin(self.faceset.labels, self.part.tail)), relabel=False)

    def features_prints(self) -> dict[str, dict]:
        """The base model, its preprocessing and the tail images (a harmless recompute on a change)."""
        return {**self.file_prints((self.ckpt["base"],)), "tail images": faceset_print(self.tail_set()),
                "base_input": config_print(self.method.base_input)}

    def cluster_prints(self) -> dict[str, dict]:
        """The tail features, the clustering's settings and seed, the partition into head and tail."""
        m = self.method
        keys = ("num_super", "num_super_factor", "ratio", "normalize_means", "spherical", "kmeans_init", "kmeans_iters")
        return {**self.file_prints((self.features_path,)),
                "clustering": config_print({**{k: getattr(m, k) for k in keys}, "seed": self.cfg.seed,
                                            "groups": dataclasses.asdict(self.cfg.data.groups)})}

    def evaluated_models(self) -> dict[str, Path]:
        available = {"ours": self.ckpt["dispersion"], "base": self.ckpt["base"], "prototype": self.ckpt["prototype"]}
        if "abcd" in self.ckpt:
            available["abcd"] = self.ckpt["abcd"]
        return {name: available[name] for name in self.method.evaluate if name in available}

    def norm_models(self) -> dict[str, Path]:
        models = {"ours (dispersion)": self.ckpt["dispersion"]}
        if "abcd" in self.ckpt:
            models = {"ABCD softmax": self.ckpt["abcd"], **models}
        return models

    # -- training sets and modules of the stages --------------------------------------------------

    def base_set(self) -> FaceSet:
        """AB (labels = rank among head classes), or every class for ``method.base: abcd``."""
        return select_groups(self.faceset, "ABCD" if self.method.base == "abcd" else "AB", self.cfg.data.groups)

    def aggregation(self):
        return load_aggregation(self.cluster_path, self.part)

    def prototype_set(self) -> FaceSet:
        agg = self.aggregation()
        labels = self.part.prototype_label_of_class(agg.super_of_tail)[self.faceset.labels]
        names = ([self.faceset.class_names[c] for c in self.part.head]
                 + [f"super{s:05d}" for s in range(agg.num_super)])
        return self.faceset.with_labels(labels, names)

    def prototype_modules(self, data: FaceSet):
        model = _model_from(self.ckpt["base"]) if self.method.prototype_from_base else new_model(self.cfg)
        return model, new_head(self.cfg, stage_class_stats(self.cfg, data))

    def dispersion_set(self) -> FaceSet:
        part = self.part
        labels = part.dispersion_label_of_class()[self.faceset.labels]
        names = [self.faceset.class_names[c] for c in np.concatenate([part.head, part.tail])]
        return self.faceset.with_labels(labels, names)

    def dispersion_modules(self, data: FaceSet):
        proto_weight = load_checkpoint(self.ckpt["prototype"])["head"]["weight"]
        assert self.cfg.head.margin is not None  # checked by ExperimentConfig.validate
        kwargs = dict(prototype_weight=proto_weight, margin=self.cfg.head.margin, mode=self.method.mode,
                      renormalize_phi=self.method.renormalize_phi)
        head: nn.Module
        if self.cfg.head.use_sharded(data.num_classes):  # this rank's rows of the dispersion head
            head = create_sharded_dispersion_head(self.cfg.model.embedding_size, self.part.num_head,
                                                  self.aggregation().super_of_tail, **kwargs,
                                                  sample_rate=self.cfg.head.sample_rate, seed=self.cfg.seed)
        else:
            head = create_dispersion_head(self.cfg.model.embedding_size, self.part.num_head,
                                          self.aggregation().super_of_tail, **kwargs)
        return _model_from(self.ckpt["prototype"]), head

    # -- the stages that do not train --------------------------------------------------------------

    def extract_tail_features(self) -> None:
        """Step I's input: features of every tail image by the base model (a tailface checkpoint or
        any ONNX face model, through :func:`tailface.eval.embedder.load_embedder`)."""
        tail_set = self.tail_set()
        embedder = load_embedder(self.ckpt["base"], **self.method.base_input)
        say("features", f"{len(tail_set)} tail images through the base model ({embedder.describe()})", self.command)
        feats = embedder.extract(tail_set, batch_size=self.method.feature_batch_size)
        save_features(self.features_path, feats, tail_set.image_ids, tail_set.labels)

    def cluster(self) -> None:
        folder = self.cluster_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        loaded = load_features(self.features_path)
        m, part = self.method, self.part
        num_super = m.num_super
        if m.num_super_factor != 1:
            base = auto_num_super(part.head_images(), part.num_head, part.tail_images()) if num_super == "auto" \
                else int(num_super)
            num_super = max(1, int(round(m.num_super_factor * base)))
        agg = aggregate(loaded["features"], loaded["labels"], part, num_super=num_super, ratio=m.ratio,
                        normalize=m.normalize_means, spherical=m.spherical, init=m.kmeans_init, niter=m.kmeans_iters,
                        seed=self.cfg.seed)
        write_text(folder / "summary.md", summary_markdown(agg, part) + "\n")
        write_text(folder / "summary.json", json.dumps(summarize(agg, part), indent=1))
        plot_sizes(folder / "sizes.png", agg, part)
        save_aggregation(self.cluster_path, agg, part, self.faceset.class_names)  # last: marks the stage done
        say("cluster", f"{part.num_tail} tail classes -> {agg.num_super} super classes ({self.cluster_path})",
            self.command)

    def norms(self) -> None:
        folder = self.out / "norms"
        folder.mkdir(parents=True, exist_ok=True)
        results = {}
        for name, ckpt in self.norm_models().items():
            weight, groups = checkpoint_row_groups(ckpt, self.faceset, self.cfg.data.groups)
            results[name] = norms_by_group(weight, groups)
        write_text(folder / "norms.md", norms_table(results) + "\n")
        plot_norms(folder / "norms.png", results)
        _write_json(folder / "norms.json", results)

    def report(self) -> None:
        metrics = {}
        if self.cfg.eval.protocols:
            metrics = {name: json.loads((self.out / "eval" / name / "metrics.json").read_text())
                       for name in self.evaluated_models()}
        norms = json.loads((self.out / "norms" / "norms.json").read_text())
        path = write_report(self.cfg, self.out, self.faceset, self.part, self.aggregation(), metrics, norms)
        say("report", str(path), self.command)


def _model_from(checkpoint: Path):
    model, _ = load_model(checkpoint)
    return model.train()


def _write_json(path: Path, doc) -> None:
    write_text(path, json.dumps(doc, indent=1))


@register_kind
class AggregateAndDisperse(ExperimentKind):
    """Aggregate-and-disperse (docs/method.md): a config with a ``method`` block
    (:class:`~tailface.method.config.MethodConfig`); its model is the dispersion stage's."""

    name = "aggregate-and-disperse"
    label = "the method"
    blocks = (KindBlock("method", MethodConfig.from_dict, MethodConfig.to_dict),)
    final = "dispersion/final.pt"
    metrics = "eval/ours/metrics.json"
    report = "report.md"
    starts_from_base = True  # method.base: another experiment's final model

    def stages(self, cfg: ExperimentConfig, out: Path, faceset: FaceSet, command: str) -> list[Stage]:
        return MethodStages(cfg, out, faceset, command).stages()

    def training_stages(self, cfg: ExperimentConfig) -> list[str]:
        return _method(cfg).stage_names()

    def first_stage(self, cfg: ExperimentConfig) -> str:
        return "base"  # its train config decides the device, also when the base model is a file

    def stage_changes(self, cfg: ExperimentConfig, stage: str) -> tuple[dict, str]:
        """The stage's epochs (and the dispersion learning rate), then ``method.<stage>_train``."""
        train = TrainConfig.from_dict(cfg.train, f"{cfg.source}: train")
        return _method(cfg).stage_changes(stage, train), f"{cfg.source}: train + method.{stage}_train"

    def validate(self, cfg: ExperimentConfig) -> None:
        where = cfg.source
        if cfg.data.subset != "ABCD" or cfg.data.tail_share:
            raise ConfigError(f"{where}: data.subset must be ABCD for the method (it splits head and tail itself)")
        if cfg.head.margin is None:
            raise ConfigError(f"{where}: head.name: the method supports {', '.join(margin_heads())}, "
                              f"got {cfg.head.name!r}")
        super().validate(cfg)

    def with_epochs(self, cfg: ExperimentConfig, total: int) -> ExperimentConfig:
        """The base model's epochs and the prototype + dispersion budget (split 40/60)."""
        method = dataclasses.replace(_method(cfg), base_epochs=total, budget=total, prototype_epochs=None,
                                     dispersion_epochs=None)
        return super().with_epochs(cfg, total).with_block("method", method)

    def with_train(self, cfg: ExperimentConfig, changes: dict) -> ExperimentConfig:
        return cfg.with_block("method", _method(cfg).without_stage_keys(changes))


def _method(cfg: ExperimentConfig) -> MethodConfig:
    assert cfg.method is not None  # a config of this kind has the block
    return cfg.method
