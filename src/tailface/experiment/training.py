"""The stages every experiment shares: train a model + head on a FaceSet, evaluate a checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from tailface.data.faceset import FaceSet
from tailface.data.label_space import ClassStats
from tailface.data.training_set import open_heldout
from tailface.errors import ConfigError
from tailface.eval.api import eval_set_prints, evaluate_checkpoint
from tailface.eval.during_training import validator_from_config
from tailface.experiment.config import ExperimentConfig
from tailface.experiment.stages import Stage, say
from tailface.fingerprints import config_print, faceset_print, file_print
from tailface.provenance import IGNORED_KEYS
from tailface.train.checkpoint import build_head, build_model
from tailface.train.config import TrainConfig
from tailface.train.sharded import build_sharded_head
from tailface.train.trainer import fit

Init = Callable[[nn.Module, nn.Module], None]


def new_model(cfg: ExperimentConfig) -> nn.Module:
    return build_model(cfg.model.name, **cfg.model.build_kwargs())


def stage_class_stats(cfg: ExperimentConfig, faceset: FaceSet) -> ClassStats:
    """The label space of a stage's training set (its own labels), with ``data.groups``."""
    return ClassStats.from_faceset(faceset, cfg.data.groups)


def new_head(cfg: ExperimentConfig, class_stats: ClassStats) -> nn.Module:
    """The ``head:`` block's head for a training set of ``class_stats.num_classes`` classes
    (:func:`stage_class_stats`, handed to the heads that need them); its class-sharded version
    (this rank's rows, after the process group is joined) when ``head.sharded`` says so
    (:meth:`HeadSpec.use_sharded`)."""
    num_classes = class_stats.num_classes
    try:
        if cfg.head.use_sharded(num_classes):
            return build_sharded_head(cfg.head.name, cfg.model.embedding_size, num_classes, cfg.head.sample_rate,
                                      cfg.seed, class_stats=class_stats, **cfg.head.kwargs)
        return build_head(cfg.head.name, cfg.model.embedding_size, num_classes, class_stats=class_stats,
                          **cfg.head.kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"head {cfg.head.name!r}: {exc}") from None


def input_name(path: Path, root: Path) -> str:
    """How a stage's record names a file it reads: relative to the experiment folder ``root``, so
    that a moved run folder keeps its records."""
    return os.path.relpath(path, root)


def train_print(train: TrainConfig) -> dict:
    """A training stage's train config as its record holds it: the keys that change a result (not
    :data:`~tailface.provenance.IGNORED_KEYS`), compared on those with a value other than the
    default (a key added to TrainConfig later, at its default, leaves earlier records matching)."""
    default = TrainConfig().to_dict()
    block = {k: v for k, v in train.to_dict().items() if k not in IGNORED_KEYS}
    return config_print(block, {k: v for k, v in block.items() if v != default.get(k, object())})


def train_stage(name: str, folder: Path, train: TrainConfig, faceset: Callable[[], FaceSet],
                build: Callable[[FaceSet], tuple[nn.Module, nn.Module]], init: Init | None = None,
                inputs: tuple[Path, ...] = (), command: str = "run", validation=None,
                settings: dict | None = None) -> Stage:
    """A stage that trains ``build(faceset)`` (model, head) with ``train`` into ``folder``
    (``final.pt`` marks it done). The torch RNG is seeded with ``train.seed`` before the modules are
    built, so a stage's initial weights do not depend on which stages ran before it in this
    process. ``init(model, head)`` runs on a fresh start only (not when resuming).
    ``validation``: ``eval.during_training`` (validation on .bin sets during training) or None.
    Its record (:mod:`tailface.fingerprints`): the training set (labels, image ids), ``train`` (less
    the keys that change no result), the files of ``inputs`` and ``settings`` (the kind's settings
    this stage reads); ``final.pt`` and ``last.pt`` made from others are refused, not redone."""
    def run() -> Path:
        data = faceset()
        torch.manual_seed(train.seed)
        model, head = build(data)
        resuming = (folder / "last.pt").is_file()
        if init is not None and not resuming:
            init(model, head)
        say(name, f"{len(data)} images, {data.num_classes} classes, {train.epochs} epochs -> {folder} "
                  f"({'resuming from last.pt' if resuming else 'from the start'})", command)
        return fit(model, head, data, train, folder, extra_meta={"stage": name},
                   validator=validator_from_config(validation))

    def fingerprints() -> dict[str, dict]:
        prints = {"training set": faceset_print(faceset()), "train": train_print(train)}
        if settings:
            prints["settings"] = config_print(settings)
        return {**prints, **{input_name(p, folder.parent): file_print(p) for p in inputs}}

    return Stage(name, folder / "final.pt", run, inputs, fingerprints=fingerprints, keeps_work=True,
                 partial=folder / "last.pt")


def eval_stage(name: str, checkpoint: Path, folder: Path, cfg: ExperimentConfig, command: str = "run") -> Stage:
    """Evaluate ``checkpoint`` with ``eval.protocols`` into ``folder/metrics.json`` (redone when
    the checkpoint is newer); its table on stdout is titled with the model (``eval ours``: ours)."""

    def run() -> dict:
        say(name, f"{', '.join(cfg.eval.protocols)} on {checkpoint}", command)
        print(f"model {name.removeprefix('eval').strip() or cfg.name or checkpoint.parent.name} ({checkpoint}):",
              flush=True)  # the title of the table evaluate_checkpoint prints on stdout (the stage lines: stderr)
        heldout = (lambda: open_heldout(cfg.data)) if cfg.data.holdout else None
        return evaluate_checkpoint(checkpoint, cfg.eval.protocols, folder, batch_size=cfg.eval.batch_size,
                                   heldout=heldout, progress=cfg.train.get("progress", True) is not False)

    def fingerprints() -> dict[str, dict]:
        return {"checkpoint": file_print(checkpoint), "eval": config_print(cfg.eval.to_block()),
                **eval_set_prints(cfg.eval.protocols)}

    return Stage(name, folder / "metrics.json", run, (checkpoint,), derived=True, main_only=True,
                 fingerprints=fingerprints)
