"""The sub-center ArcFace drop step as an experiment kind (a config with a ``drop`` block; Deng et
al., ECCV 2020, "Sub-center ArcFace: Boosting Face Recognition by Large-scale Noisy Web Faces"):
train sub-center ArcFace, drop the samples far from their class's dominant sub-centre, retrain on
the rest. Stages, one folder each under ``out/``::

    train/     sub-center ArcFace (the head block: subcenter_arcface, K 3)    final.pt, train.csv
    drop/      features.npz: every training image through the trained model (no flip)
               dropped.csv, summary.json, summary.md, kept.npy (last: marks the stage done)
    retrain/   ArcFace (or sub-center ArcFace) from scratch on the kept images final.pt, train.csv
    eval/      evaluate_checkpoint of retrain/final.pt with eval.protocols  metrics.json

The drop: with the trained sub-centres ``w_ck`` (``C x K x d``) and each image's feature ``f_i``,
:func:`~tailface.heads.subcenter.dominant_subcentres` gives each class's dominant sub-centre
``k*_c`` (the one most of its images are closest to) and the angle of every image to it,

    angle_i = acos(cos(f_i, w_{y_i k*_{y_i}})) in degrees,   dropped_i = angle_i > drop.angle,

which drops an image's non-dominant sub-centres and the "high-confident noisy" images with it.
``dropped.csv`` lists them (``image_id, identity, label, angle``, in training-set order), the
summary counts them per group A-D of the training set (images, dropped, classes left without an
image, which the retraining no longer has). The retraining set is the kept images, classes
renumbered densely (empty ones gone).

The block (both keys optional)::

    drop:
      angle: 75          # degrees, in (0, 180): the paper's 75
      retrain: arcface   # arcface: plain ArcFace (K = 1) with the head block's margin, s and m (the
                         # paper's: "train ArcFace on the cleaned set"); subcenter: the head block again

Decisions: the retraining starts from scratch (a fresh backbone and classifier, seeded as every
training stage; the paper and the authors' recipe train a new model on the cleaned set); it keeps
the train block (the same budget as the first stage; ``--epochs`` sets both stages' epochs). The
features are the trained backbone's of the image alone (no flip fusion), as the classifier saw
them in training and as the authors' ``drop.py`` computes them. An image exactly at the threshold
is kept ("farther than"; the authors keep ``cos > cos(75)``, a difference of measure zero). The
features stage is reused when the model and the images are the same, the drop stage when its
features, sub-centres and ``drop.angle`` are (:mod:`tailface.fingerprints`), so changing only the
angle recomputes only the drop.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from tailface.atomic import atomic_path, write_text
from tailface.data.faceset import FaceSet
from tailface.data.groups import GROUPS, GroupThresholds, group_of_counts
from tailface.data.training_set import training_set
from tailface.errors import ConfigError, DataError
from tailface.eval.embedder import load_embedder
from tailface.eval.features import load_features, save_features
from tailface.experiment.config import ExperimentConfig, check_keys
from tailface.experiment.kinds import ExperimentKind, KindBlock, register_kind
from tailface.experiment.stages import Stage, say
from tailface.experiment.training import eval_stage, input_name, new_head, new_model, stage_class_stats, train_stage
from tailface.fingerprints import config_print, faceset_print, file_print
from tailface.heads.base import default_margin
from tailface.heads.spec import HeadSpec
from tailface.heads.subcenter import dominant_subcentres, margin_settings
from tailface.train.checkpoint import load_checkpoint

SUBCENTER_HEAD = "subcenter_arcface"
RETRAIN = ("arcface", "subcenter")
DROPPED_COLUMNS = ("image_id", "identity", "label", "angle")


@dataclass(frozen=True)
class DropConfig:
    """The ``drop`` block (module docstring)."""

    angle: float = 75.0
    retrain: str = "arcface"

    @classmethod
    def from_block(cls, block, where: str = "drop") -> DropConfig:
        block = check_keys(block, ("angle", "retrain"), where)
        angle = block.get("angle", cls.angle)
        if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0 < angle < 180:
            raise ConfigError(f"{where}.angle must be a number of degrees in (0, 180), got {angle!r}")
        retrain = block.get("retrain", cls.retrain)
        if retrain not in RETRAIN:
            raise ConfigError(f"{where}.retrain must be one of {', '.join(RETRAIN)}, got {retrain!r}")
        return cls(float(angle), retrain)

    def to_block(self) -> dict:
        return dataclasses.asdict(self)


# the decision -------------------------------------------------------------------------------------
class DropDecision(NamedTuple):
    """``dominant``: each class's dominant sub-centre (``-1`` without images); ``angle``: each
    image's angle to it, degrees (float64); ``dropped``: bool, ``angle > threshold``."""

    dominant: np.ndarray
    angle: np.ndarray
    dropped: np.ndarray


def drop_decision(weight: torch.Tensor, features, labels, angle: float) -> DropDecision:
    """The drop of the images whose angle to their class's dominant sub-centre exceeds ``angle``
    degrees (``weight``: ``C x K x d`` sub-centres; ``features``: ``N x d``; ``labels``: ``N``)."""
    got = dominant_subcentres(torch.as_tensor(weight), torch.as_tensor(np.asarray(features)),
                              torch.as_tensor(np.asarray(labels, dtype=np.int64)))
    angles = got.angle.numpy()
    return DropDecision(got.dominant.numpy(), angles, angles > angle)


def drop_summary(labels: np.ndarray, dropped: np.ndarray, num_classes: int, thresholds: GroupThresholds,
                 angle: float) -> dict:
    """Per group A-D of the training set (and in all): classes, images, dropped images, their
    share, and classes left without an image."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    kept = np.bincount(labels[~dropped], minlength=num_classes)
    groups = group_of_counts(counts, thresholds)

    def row(mask: np.ndarray) -> dict:
        images, gone = int(counts[mask].sum()), int((counts[mask] - kept[mask]).sum())
        return {"classes": int(mask.sum()), "images": images, "dropped": gone,
                "dropped_share": gone / images if images else 0.0,
                "classes_emptied": int(((kept == 0) & (counts > 0) & mask).sum())}

    return {"angle": angle, "groups": {g: row(groups == g) for g in GROUPS},
            "all": row(np.ones(num_classes, dtype=bool))}


def drop_warning(summary: dict) -> str | None:
    """A warning when the drop leaves less than half of the training set: what a barely trained
    sub-center model does (most images far from every sub-centre), and rarely the data."""
    row = summary["all"]
    if row["dropped_share"] <= 0.5:
        return None
    return (f"warning: {100 * row['dropped_share']:.0f}% of the training set dropped, so the retraining sees less "
            "than half of it; a sub-center model trained too briefly (--max-steps, --epochs) puts most images far "
            f"from every sub-centre: read summary.md per group before trusting the retrained model")


def summary_markdown(summary: dict) -> str:
    lines = [f"Sub-center drop: images farther than {summary['angle']:g} degrees from their class's dominant "
             "sub-centre.", "", "| group | classes | images | dropped | dropped % | classes emptied |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, row in [*summary["groups"].items(), ("all", summary["all"])]:
        lines.append(f"| {name} | {row['classes']} | {row['images']} | {row['dropped']} | "
                     f"{100 * row['dropped_share']:.2f} | {row['classes_emptied']} |")
    return "\n".join(lines)


def dropped_csv(faceset: FaceSet, decision: DropDecision) -> str:
    """``dropped.csv``: one row per dropped image, in training-set order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DROPPED_COLUMNS)
    labels = np.asarray(faceset.labels)
    for i in np.flatnonzero(decision.dropped):
        label = int(labels[i])
        writer.writerow([faceset.image_ids[i], faceset.class_names[label], label, f"{decision.angle[i]:.4f}"])
    return out.getvalue()


def read_dropped(path: str | Path) -> list[dict]:
    """The rows of a ``dropped.csv`` (``label`` int, ``angle`` float)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{**r, "label": int(r["label"]), "angle": float(r["angle"])} for r in rows]


def retrain_set(faceset: FaceSet, kept: np.ndarray) -> FaceSet:
    """The kept images, classes renumbered densely in their old order (classes without any gone)."""
    if not len(kept):
        raise DataError(f"{faceset.source}: the drop left no image to retrain on (every image is farther from its "
                        "class's dominant sub-centre than drop.angle); raise drop.angle")
    return faceset.subset(np.asarray(kept, dtype=np.int64), relabel=True)


def retrain_spec(head: HeadSpec, retrain: str) -> HeadSpec:
    """The retraining's head: the head block itself (``subcenter``), or the plain margin head of its
    margin kind with the same ``s``, ``m`` and ``easy_margin`` (``arcface``: ArcFace for the default)."""
    if retrain == "subcenter":
        return head
    kw = head.kwargs
    kind, s, m = margin_settings(kw.get("margin", "arcface"), kw.get("s"), kw.get("m"))
    default = default_margin(kind)
    if default is None or default.kind != kind:
        raise ConfigError(f"drop.retrain: arcface needs a plain margin head named {kind!r} (the head block's margin)")
    kwargs = {"s": s, "m": m, **({"easy_margin": kw["easy_margin"]} if "easy_margin" in kw else {})}
    return dataclasses.replace(head, name=kind, kwargs=kwargs)


# the stages ---------------------------------------------------------------------------------------
class DropStages:
    """The kind's stages over one training set; each reads its inputs from the files earlier ones wrote."""

    def __init__(self, cfg: ExperimentConfig, out: Path, faceset: FaceSet, command: str = "run"):
        self.cfg, self.out, self.command = cfg, out, command
        self.drop: DropConfig = cfg.block("drop")
        self.train_set = training_set(faceset, cfg.data)
        self.trained = out / "train" / "final.pt"
        self.features_path = out / "drop" / "features.npz"
        self.kept_path = out / "drop" / "kept.npy"

    def stages(self) -> list[Stage]:
        cfg, out = self.cfg, self.out
        retrain_cfg = dataclasses.replace(cfg, head=retrain_spec(cfg.head, self.drop.retrain))

        def build(head_cfg: ExperimentConfig):
            return lambda data: (new_model(cfg), new_head(head_cfg, stage_class_stats(cfg, data)))

        stages = [
            train_stage("train", out / "train", cfg.stage_train("train"), lambda: self.train_set, build(cfg),
                        command=self.command, validation=cfg.eval.during_training),
            Stage("features", self.features_path, self.extract, (self.trained,), main_only=True,
                  fingerprints=self.features_prints),
            Stage("drop", self.kept_path, self.drop_samples, (self.features_path, self.trained), main_only=True,
                  fingerprints=self.drop_prints),
            train_stage("retrain", out / "retrain", cfg.stage_train("retrain"), self.retrain_set, build(retrain_cfg),
                        inputs=(self.kept_path,), command=self.command, validation=cfg.eval.during_training,
                        settings={"retrain": retrain_cfg.head.to_block()}),
        ]
        if cfg.eval.protocols:
            stages.append(eval_stage("eval", out / "retrain" / "final.pt", out / "eval", cfg, self.command))
        return stages

    def file_prints(self, *paths: Path) -> dict[str, dict]:
        return {input_name(p, self.out): file_print(p) for p in paths}

    def features_prints(self) -> dict[str, dict]:
        return {**self.file_prints(self.trained), "training set": faceset_print(self.train_set)}

    def drop_prints(self) -> dict[str, dict]:
        return {**self.file_prints(self.features_path, self.trained), "drop": config_print({"angle": self.drop.angle})}

    def extract(self) -> None:
        embedder = load_embedder(self.trained)
        say("features", f"{len(self.train_set)} training images through {self.trained} (no flip)", self.command)
        feats = embedder.extract(self.train_set, batch_size=self.cfg.eval.batch_size, flip=False, progress=False)
        save_features(self.features_path, feats, self.train_set.image_ids, self.train_set.labels)

    def drop_samples(self) -> None:
        folder = self.kept_path.parent
        loaded = load_features(self.features_path)
        ids, labels = loaded["image_ids"], loaded["labels"]
        if ids != [str(i) for i in self.train_set.image_ids] or labels is None \
                or not np.array_equal(labels, np.asarray(self.train_set.labels)):
            raise DataError(f"{self.features_path}: not the features of this training set (other images or labels); "
                            f"delete it and rerun")
        weight = load_checkpoint(self.trained)["head"]["weight"]
        if weight.dim() != 3:
            raise ConfigError(f"{self.trained}: the drop needs sub-centres (C x K x d), the head has "
                              f"{tuple(weight.shape)}")
        decision = drop_decision(weight, loaded["features"], labels, self.drop.angle)
        summary = drop_summary(labels, decision.dropped, self.train_set.num_classes, self.cfg.data.groups,
                               self.drop.angle)
        write_text(folder / "dropped.csv", dropped_csv(self.train_set, decision))
        write_text(folder / "summary.json", json.dumps(summary, indent=1) + "\n")
        write_text(folder / "summary.md", summary_markdown(summary) + "\n")
        with atomic_path(self.kept_path, suffix=".npy") as tmp:  # last: marks the stage done
            np.save(tmp, np.flatnonzero(~decision.dropped).astype(np.int64))
        row = summary["all"]
        say("drop", f"{row['dropped']} of {row['images']} images farther than {self.drop.angle:g} degrees "
                    f"({100 * row['dropped_share']:.2f}%), {row['classes_emptied']} classes emptied; "
                    f"{folder / 'dropped.csv'}", self.command)
        warning = drop_warning(summary)
        if warning:
            say("drop", warning, self.command)

    def retrain_set(self) -> FaceSet:
        return retrain_set(self.train_set, np.load(self.kept_path))


@register_kind
class SubcenterDrop(ExperimentKind):
    """Sub-center ArcFace, its drop step, and the retraining on the kept images (module docstring)."""

    name = "subcenter-drop"
    label = "the sub-center drop"
    blocks = (KindBlock("drop", DropConfig.from_block, DropConfig.to_block),)
    final = "retrain/final.pt"
    metrics = "eval/metrics.json"

    def stages(self, cfg: ExperimentConfig, out: Path, faceset: FaceSet, command: str) -> list[Stage]:
        return DropStages(cfg, out, faceset, command).stages()

    def training_stages(self, cfg: ExperimentConfig) -> list[str]:
        return ["train", "retrain"]

    def validate(self, cfg: ExperimentConfig) -> None:
        if cfg.head.name != SUBCENTER_HEAD:
            raise ConfigError(f"{cfg.source}: head.name: the sub-center drop trains {SUBCENTER_HEAD} first, "
                              f"got {cfg.head.name!r}")
        try:
            retrain_spec(cfg.head, cfg.block("drop").retrain)
        except ConfigError as exc:
            raise ConfigError(f"{cfg.source}: {exc}") from None
        super().validate(cfg)
