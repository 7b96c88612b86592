"""The stages every experiment shares: train a model + head on a FaceSet, evaluate a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from tailface.data.faceset import FaceSet
from tailface.data.groups import GroupThresholds, group_of_counts
from tailface.errors import ConfigError
from tailface.experiment.config import ExperimentConfig
from tailface.experiment.stages import Stage, say
from tailface.train.checkpoint import build_head, build_model
from tailface.train.config import TrainConfig

Init = Callable[[nn.Module, nn.Module], None]


def select_subset(faceset: FaceSet, subset: str, thresholds: GroupThresholds, share: dict | None = None,
                  seed: int = 0) -> FaceSet:
    """The classes of the groups in ``subset`` (``ABCD``: the set itself), plus for each group in
    ``share`` that fraction of its classes (drawn by ``seed``); relabelled densely in ascending
    class id, names kept."""
    share = {g: v for g, v in (share or {}).items() if v > 0}
    if subset == "ABCD" and not share:
        return faceset
    groups = group_of_counts(faceset.class_counts(), thresholds)
    keep = np.isin(groups, list(subset))
    for g, fraction in sorted(share.items()):
        members = np.flatnonzero(groups == g)
        drawn = np.random.default_rng([seed, ord(g)]).permutation(members)[: int(round(fraction * len(members)))]
        keep[drawn] = True
    classes = np.flatnonzero(keep)
    if not len(classes):
        raise ConfigError(f"{faceset.source}: no classes in groups {subset} with {thresholds}")
    return faceset.subset(np.flatnonzero(np.isin(faceset.labels, classes)), relabel=True)


def new_model(cfg: ExperimentConfig) -> nn.Module:
    return build_model(cfg.model.name, **cfg.model.build_kwargs())


def new_head(cfg: ExperimentConfig, num_classes: int) -> nn.Module:
    """The ``head:`` block's head; its class-sharded version (this rank's rows, after the process
    group is joined) when ``head.sharded`` says so (:meth:`HeadSpec.use_sharded`)."""
    try:
        if cfg.head.use_sharded(num_classes):
            from tailface.train.sharded import build_sharded_head

            return build_sharded_head(cfg.head.name, cfg.model.embedding_size, num_classes, cfg.head.sample_rate,
                                      cfg.seed, **cfg.head.kwargs)
        return build_head(cfg.head.name, cfg.model.embedding_size, num_classes, **cfg.head.kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"head {cfg.head.name!r}: {exc}") from None


def train_stage(name: str, folder: Path, train: TrainConfig, faceset: Callable[[], FaceSet],
                build: Callable[[FaceSet], tuple[nn.Module, nn.Module]], init: Init | None = None,
                inputs: tuple[Path, ...] = (), command: str = "run", validation=None) -> Stage:
    """A stage that trains ``build(faceset)`` (model, head) with ``train`` into ``folder``
    (``final.pt`` marks it done). The torch RNG is seeded with ``train.seed`` before the modules are
    built, so a stage's initial weights do not depend on which stages ran before it in this
    process. ``init(model, head)`` runs on a fresh start only (not when resuming).
    ``validation``: ``eval.during_training`` (validation on .bin sets during training) or None."""
    from tailface.train.trainer import fit

    def run() -> Path:
        data = faceset()
        torch.manual_seed(train.seed)
        model, head = build(data)
        resuming = (folder / "last.pt").is_file()
        if init is not None and not resuming:
            init(model, head)
        say(name, f"{len(data)} images, {data.num_classes} classes, {train.epochs} epochs -> {folder} "
                  f"({'resuming from last.pt' if resuming else 'from the start'})", command)
        from tailface.eval.during_training import validator_from_config  # eval.during_training

        return fit(model, head, data, train, folder, extra_meta={"stage": name},
                   validator=validator_from_config(validation))

    return Stage(name, folder / "final.pt", run, inputs)


def eval_stage(name: str, checkpoint: Path, folder: Path, cfg: ExperimentConfig, command: str = "run") -> Stage:
    """Evaluate ``checkpoint`` with ``eval.protocols`` into ``folder/metrics.json`` (redone when
    the checkpoint is newer)."""

    def run() -> dict:
        from tailface.eval.api import evaluate_checkpoint

        say(name, f"{', '.join(cfg.eval.protocols)} on {checkpoint}", command)
        heldout = cfg.data.open_heldout if cfg.data.holdout else None
        return evaluate_checkpoint(checkpoint, cfg.eval.protocols, folder, batch_size=cfg.eval.batch_size,
                                   heldout=heldout)

    return Stage(name, folder / "metrics.json", run, (checkpoint,), derived=True, main_only=True)
