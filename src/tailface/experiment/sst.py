"""The Semi-Siamese Training experiment kind (a config with an ``sst`` block): stages train, [eval].

Outputs in ``out``: ``train/`` (``last.pt`` with the gallery network and the prototype queue,
``final.pt`` whose model is the probe network, ``train.csv``), ``eval/metrics.json``. The loss,
the queue and the momentum network are :mod:`tailface.method.sst`; docs/method.md ("Semi-Siamese
Training") has the equations and the decisions. The ``sst`` block (all keys optional)::

    sst:
      momentum: 0.999       # alpha of the gallery network's moving average (the paper's)
      queue_size: 16384     # prototype slots Q (FaceX-Zoo's); at least the pairs of a batch
      margin: cosface       # none | cosface | arcface (heads/margins.py) on the target prototype
      m: 0.35               # the margin's value
      scale: 32.0           # s
      bn_splits: 1          # shuffle-BN groups per process (the batch's pairs divisible by it)
      view_shift: 0.1       # a one-image identity's second view: mirrored, moved up to this share of the side

The kind draws identity pairs: ``train.batch_size`` images = ``batch_size / 2`` pairs of distinct
identities (the ``pk`` sampler with ``k = 2``, identities visited in rounds, a one-image identity's
image twice), ``len(data) / batch_size`` steps an epoch as the baselines. The ``head`` block is not
used (the queue is the classifier; the margin is ``sst.margin``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch.nn as nn

from tailface.data.faceset import FaceSet
from tailface.data.training_set import training_set
from tailface.errors import ConfigError
from tailface.experiment.config import ExperimentConfig, check_keys
from tailface.experiment.kinds import ExperimentKind, KindBlock, register_kind
from tailface.experiment.stages import Stage
from tailface.experiment.training import eval_stage, new_model, train_stage
from tailface.heads.margins import MARGINS, Margin
from tailface.heads.spec import HeadSpec
from tailface.method.sst import SemiSiamese
from tailface.train.config import TrainConfig


def _number(value, where: str, low: float, high: float, closed_high: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (low <= value < high or (closed_high and value == high)):
        bound = f"[{low}, {high}]" if closed_high else f"[{low}, {high})"
        raise ConfigError(f"{where} must be a number in {bound}, got {value!r}")
    return float(value)


def _count(value, where: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ConfigError(f"{where} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class SSTConfig:
    """The ``sst`` block (module docstring)."""

    momentum: float = 0.999
    queue_size: int = 16384
    margin: str = "cosface"
    m: float = 0.35
    scale: float = 32.0
    bn_splits: int = 1
    view_shift: float = 0.1

    @classmethod
    def from_block(cls, block, where: str = "sst") -> SSTConfig:
        block = check_keys(block, [f for f in cls.__dataclass_fields__], where)
        d = cls()
        margin = block.get("margin", d.margin)
        if margin not in MARGINS:
            raise ConfigError(f"{where}.margin must be one of {', '.join(MARGINS)}, got {margin!r}")
        return cls(momentum=_number(block.get("momentum", d.momentum), f"{where}.momentum", 0.0, 1.0),
                   queue_size=_count(block.get("queue_size", d.queue_size), f"{where}.queue_size"),
                   margin=margin,
                   m=_number(block.get("m", d.m), f"{where}.m", 0.0, 1.5, closed_high=True),
                   scale=_number(block.get("scale", d.scale), f"{where}.scale", 1e-6, 1e4),
                   bn_splits=_count(block.get("bn_splits", d.bn_splits), f"{where}.bn_splits"),
                   view_shift=_number(block.get("view_shift", d.view_shift), f"{where}.view_shift", 0.0, 0.5))

    def to_block(self) -> dict:
        return asdict(self)

    def margin_spec(self) -> Margin:
        return Margin(self.margin, scale=self.scale, value=self.m)


def pair_sampler(batch_size: int) -> dict:
    """The train block's sampler of a batch of ``batch_size / 2`` identity pairs."""
    return {"name": "pk", "p": batch_size // 2, "k": 2, "min_images": 1}


def _sst(cfg: ExperimentConfig) -> SSTConfig:
    sst = cfg.block("sst")
    assert isinstance(sst, SSTConfig)  # a config of this kind has the block
    return sst


def new_objective(cfg: ExperimentConfig, probe: nn.Module, seed: int) -> SemiSiamese:
    """The SST objective of the ``sst`` block around ``probe`` (its gallery starts as a copy)."""
    sst = _sst(cfg)
    return SemiSiamese(probe, cfg.model.embedding_size, momentum=sst.momentum, queue_size=sst.queue_size,
                       margin=sst.margin_spec(), bn_splits=sst.bn_splits, view_shift=sst.view_shift, seed=seed)


@register_kind
class SemiSiameseTraining(ExperimentKind):
    """Semi-Siamese Training: one probe network trained against a prototype queue of its moving
    average's features (no classifier)."""

    name = "semi-siamese"
    label = "semi-siamese training"
    blocks = (KindBlock("sst", SSTConfig.from_block, SSTConfig.to_block),)
    final = "train/final.pt"
    metrics = "eval/metrics.json"

    def stages(self, cfg: ExperimentConfig, out: Path, faceset: FaceSet, command: str) -> list[Stage]:
        train_cfg = cfg.stage_train("train")

        def build(data: FaceSet):
            probe = new_model(cfg)
            return probe, new_objective(cfg, probe, train_cfg.seed)

        train = train_stage("train", out / "train", train_cfg, lambda: training_set(faceset, cfg.data), build,
                            command=command, validation=cfg.eval.during_training,
                            settings={"sst": _sst(cfg).to_block()})  # a changed sst block: not resumed
        evaluate = [eval_stage("eval", train.output, out / "eval", cfg, command)] if cfg.eval.protocols else []
        return [train, *evaluate]

    def stage_changes(self, cfg: ExperimentConfig, stage: str) -> tuple[dict, str]:
        batch = cfg.train.get("batch_size", TrainConfig.batch_size)
        return {"sampler": pair_sampler(batch)}, f"{cfg.source}: train"

    def validate(self, cfg: ExperimentConfig) -> None:
        where, sst = cfg.source, _sst(cfg)
        if cfg.train.get("sampler") is not None:
            raise ConfigError(f"{where}: train.sampler: semi-siamese training draws identity pairs itself "
                              "(pk, k = 2); remove train.sampler")
        if cfg.head != HeadSpec():
            raise ConfigError(f"{where}: head: semi-siamese training has no classifier (the prototype queue "
                              f"replaces it); remove the head block and set the margin in sst.margin, sst.m")
        batch = cfg.stage_train("train").batch_size
        if batch % 2 or batch < 2:
            raise ConfigError(f"{where}: train.batch_size {batch} must be even: a batch holds identity pairs")
        if sst.queue_size < batch // 2:
            raise ConfigError(f"{where}: sst.queue_size {sst.queue_size} must hold at least the {batch // 2} "
                              "pairs of a batch")
        if (batch // 2) % sst.bn_splits:
            raise ConfigError(f"{where}: sst.bn_splits {sst.bn_splits} must divide the {batch // 2} pairs of a batch")
