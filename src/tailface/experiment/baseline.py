"""The baseline experiment kind (the default kind: a config without another kind's block):
stages [pretrain (AB-ABCD)], train, [eval].

Outputs in ``out``: ``pretrain/`` (AB-ABCD only), ``train/`` (``last.pt``, ``final.pt``,
``train.csv``), ``eval/metrics.json``. Its own block is ``pretrain`` (:class:`PretrainConfig`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from tailface.data.faceset import FaceSet
from tailface.data.training_set import select_groups, training_set
from tailface.errors import ConfigError
from tailface.experiment.config import SUBSETS, ExperimentConfig, check_keys, train_keys
from tailface.experiment.kinds import ExperimentKind, KindBlock, register_kind
from tailface.experiment.stages import Stage
from tailface.experiment.training import Init, eval_stage, new_head, new_model, stage_class_stats, train_stage
from tailface.heads.sharded import gather_full_weight, load_full_weight
from tailface.train.checkpoint import load_checkpoint
from tailface.train.config import TrainConfig
from tailface.train.sharded import ShardedHead

TAIL_INITS = ("random", "mean_of_head")


@dataclass(frozen=True)
class PretrainConfig:
    """AB-ABCD: a first stage on ``subset`` whose backbone and rows start the main stage."""

    subset: str = "AB"
    tail_init: str = "random"
    train: dict = field(default_factory=dict)  # changes to the train block for this stage

    @classmethod
    def from_block(cls, block, where: str = "pretrain") -> PretrainConfig:
        block = check_keys(block, ("subset", "tail_init", "train"), where)
        subset, tail_init = block.get("subset", "AB"), block.get("tail_init", "random")
        if subset not in SUBSETS:
            raise ConfigError(f"{where}.subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
        if tail_init not in TAIL_INITS:
            raise ConfigError(f"{where}.tail_init must be one of {', '.join(TAIL_INITS)}, got {tail_init!r}")
        return cls(subset, tail_init, check_keys(block.get("train"), train_keys(), f"{where}.train"))

    def to_block(self) -> dict:
        return {"subset": self.subset, "tail_init": self.tail_init, "train": dict(self.train)}


def init_from_pretrained(model: nn.Module, head: nn.Module, pretrained: Path, class_names: list[str],
                         tail_init: str) -> None:
    """Backbone from the pretrain checkpoint; classifier rows of classes seen in pretraining copied
    by class name; the other (tail) rows keep the head's random initialisation (``random``) or
    start at the mean of the copied rows (``mean_of_head``)."""
    ckpt = load_checkpoint(pretrained)
    model.load_state_dict(ckpt["model"])
    old_names = ckpt["meta"]["class_names"]
    index = {name: i for i, name in enumerate(class_names)}
    missing = [n for n in old_names if n not in index]
    if missing:
        raise ConfigError(f"{pretrained}: pretrained classes not in the fine-tuning set (e.g. {missing[0]!r})")
    old_rows = ckpt["head"]["weight"]
    new_rows = torch.as_tensor([index[n] for n in old_names], dtype=torch.long)
    sharded = head if isinstance(head, ShardedHead) else None  # edit the whole classifier, keep this rank's rows
    weight = gather_full_weight(sharded) if sharded is not None else head.weight
    assert isinstance(weight, torch.Tensor)
    with torch.no_grad():
        if tail_init == "mean_of_head":
            weight[:] = old_rows.mean(0).to(weight.dtype)
        weight[new_rows] = old_rows.to(weight.dtype)
    if sharded is not None:
        load_full_weight(sharded, weight)


def baseline_stages(cfg: ExperimentConfig, out: Path, faceset: FaceSet, command: str = "train") -> list[Stage]:
    groups = cfg.data.groups
    train_set = training_set(faceset, cfg.data)

    def build(data: FaceSet):
        return new_model(cfg), new_head(cfg, stage_class_stats(cfg, data))

    stages: list[Stage] = []
    init: Init | None = None
    inputs: tuple[Path, ...] = ()
    if cfg.pretrain is not None:
        pre = cfg.pretrain
        pre_set = select_groups(faceset, pre.subset, groups)
        pretrain = train_stage("pretrain", out / "pretrain", cfg.stage_train("pretrain"), lambda: pre_set, build,
                               command=command)
        stages.append(pretrain)
        inputs = (pretrain.output,)

        def init(model: nn.Module, head: nn.Module) -> None:
            init_from_pretrained(model, head, pretrain.output, train_set.class_names, pre.tail_init)

    settings = {"tail_init": cfg.pretrain.tail_init} if cfg.pretrain is not None else None
    train = train_stage("train", out / "train", cfg.stage_train("train"), lambda: train_set, build, init, inputs,
                        command, validation=cfg.eval.during_training, settings=settings)
    stages.append(train)
    if cfg.eval.protocols:
        stages.append(eval_stage("eval", train.output, out / "eval", cfg, command))
    return stages


@register_kind
class Baseline(ExperimentKind):
    """A baseline: one model trained on ``data.subset`` (after a ``pretrain`` stage for AB-ABCD)."""

    name = "baseline"
    label = "a baseline"
    blocks = (KindBlock("pretrain", PretrainConfig.from_block, PretrainConfig.to_block),)
    default = True
    final = "train/final.pt"
    metrics = "eval/metrics.json"

    def stages(self, cfg: ExperimentConfig, out: Path, faceset: FaceSet, command: str) -> list[Stage]:
        return baseline_stages(cfg, out, faceset, command)

    def training_stages(self, cfg: ExperimentConfig) -> list[str]:
        return ["pretrain", "train"] if cfg.pretrain is not None else ["train"]

    def stage_changes(self, cfg: ExperimentConfig, stage: str) -> tuple[dict, str]:
        if stage == "pretrain" and cfg.pretrain is not None:
            return dict(cfg.pretrain.train), f"{cfg.source}: pretrain.train"
        return {}, f"{cfg.source}: train"

    def validate(self, cfg: ExperimentConfig) -> None:
        cfg.stage_train("train")
        if cfg.pretrain is not None:
            cfg.stage_train("pretrain")
            if cfg.data.tail_share:
                raise ConfigError(f"{cfg.source}: data.tail_share is not supported with a pretrain stage")

    def with_epochs(self, cfg: ExperimentConfig, total: int) -> ExperimentConfig:
        """``train.epochs``; AB-ABCD keeps its pretrain / fine-tune proportion."""
        if cfg.pretrain is None:
            return super().with_epochs(cfg, total)
        pre_epochs = cfg.pretrain.train.get("epochs", cfg.train.get("epochs", TrainConfig.epochs))
        ft_epochs = cfg.train.get("epochs", TrainConfig.epochs)
        first = min(max(1, round(total * pre_epochs / (pre_epochs + ft_epochs))), max(1, total - 1))
        pretrain = dataclasses.replace(cfg.pretrain, train={**cfg.pretrain.train, "epochs": first})
        return dataclasses.replace(cfg.with_block("pretrain", pretrain),
                                   train={**cfg.train, "epochs": max(1, total - first)})

    def with_train(self, cfg: ExperimentConfig, changes: dict) -> ExperimentConfig:
        if cfg.pretrain is None:
            return cfg
        return cfg.with_block("pretrain", dataclasses.replace(cfg.pretrain, train={**cfg.pretrain.train, **changes}))
