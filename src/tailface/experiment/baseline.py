"""A baseline experiment as stages: [pretrain (AB-ABCD)], train, [eval].

Outputs in ``out``: ``pretrain/`` (AB-ABCD only), ``train/`` (``last.pt``, ``final.pt``,
``train.csv``), ``eval/metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from tailface.data.faceset import FaceSet
from tailface.errors import ConfigError
from tailface.experiment.config import ExperimentConfig
from tailface.experiment.stages import Stage
from tailface.experiment.training import Init, eval_stage, new_head, new_model, select_subset, train_stage


def init_from_pretrained(model: nn.Module, head: nn.Module, pretrained: Path, class_names: list[str],
                         tail_init: str) -> None:
    """Backbone from the pretrain checkpoint; classifier rows of classes seen in pretraining copied
    by class name; the other (tail) rows keep the head's random initialisation (``random``) or
    start at the mean of the copied rows (``mean_of_head``)."""
    from tailface.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(pretrained)
    model.load_state_dict(ckpt["model"])
    old_names = ckpt["meta"]["class_names"]
    index = {name: i for i, name in enumerate(class_names)}
    missing = [n for n in old_names if n not in index]
    if missing:
        raise ConfigError(f"{pretrained}: pretrained classes not in the fine-tuning set (e.g. {missing[0]!r})")
    old_rows = ckpt["head"]["weight"]
    new_rows = torch.as_tensor([index[n] for n in old_names], dtype=torch.long)
    from tailface.heads.sharded import gather_full_weight, load_full_weight
    from tailface.train.sharded import ShardedHead

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
    train_set = select_subset(faceset, cfg.data.subset, groups, cfg.data.tail_share, cfg.data.subset_seed)

    def build(data: FaceSet):
        return new_model(cfg), new_head(cfg, data.num_classes)

    stages: list[Stage] = []
    init: Init | None = None
    inputs: tuple[Path, ...] = ()
    if cfg.pretrain is not None:
        pre = cfg.pretrain
        pre_set = select_subset(faceset, pre.subset, groups)
        pretrain = train_stage("pretrain", out / "pretrain", cfg.stage_train("pretrain"), lambda: pre_set, build,
                               command=command)
        stages.append(pretrain)
        inputs = (pretrain.output,)

        def init(model: nn.Module, head: nn.Module) -> None:
            init_from_pretrained(model, head, pretrain.output, train_set.class_names, pre.tail_init)

    train = train_stage("train", out / "train", cfg.stage_train("train"), lambda: train_set, build, init, inputs,
                        command, validation=cfg.eval.during_training)
    stages.append(train)
    if cfg.eval.protocols:
        stages.append(eval_stage("eval", train.output, out / "eval", cfg, command))
    return stages
