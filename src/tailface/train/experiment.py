"""Baseline experiments from YAML: data (+ AB/ABCD subset), model, head, training, evaluation.

Outputs in ``out_dir``: ``config.yaml`` (the resolved configuration), ``pretrain/`` (AB-ABCD only),
``train/`` (``last.pt``, ``final.pt``, ``train.csv``), ``eval/metrics.json``. A stage whose output
exists is reused (``final.pt``, ``metrics.json``); an interrupted stage resumes from ``last.pt``.
See docs/training.md for the schema.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from tailface.data.faceset import FaceSet
from tailface.data.groups import GroupThresholds, head_tail_split
from tailface.errors import ConfigError
from tailface.train.checkpoint import build_head, build_model, load_checkpoint
from tailface.train.config import TrainConfig
from tailface.train import distributed as ddp
from tailface.train.trainer import fit, resolve_device
from tailface.yaml_config import read_yaml

BLOCKS = {"data", "model", "head", "pretrain", "train", "eval"}
DATA_KEYS = {"train", "groups", "subset", "options"}
PRETRAIN_KEYS = {"subset", "tail_init", "train"}
EVAL_KEYS = {"protocols", "batch_size"}
SUBSETS = ("ABCD", "AB")
TAIL_INITS = ("random", "mean_of_head")


def is_main_process() -> bool:
    """Rank 0 under torchrun (or a single process): the one that writes and evaluates."""
    return os.environ.get("RANK", "0") == "0"


def _say(msg: str) -> None:
    if is_main_process():
        print(f"tailface train: {msg}", file=sys.stderr)


def _check_keys(block: dict, known: set, where: str) -> dict:
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(block).__name__}")
    unknown = sorted(set(block) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return block


def load_experiment(path) -> dict:
    return validate_experiment(read_yaml(path), str(path))


def validate_experiment(config: dict, where: str = "<config>") -> dict:
    config = copy.deepcopy(_check_keys(config, BLOCKS, where))
    data = _check_keys(config.setdefault("data", {}), DATA_KEYS, f"{where}: data")
    if data.get("subset", "ABCD") not in SUBSETS:
        raise ConfigError(f"{where}: data.subset must be one of {', '.join(SUBSETS)}, got {data['subset']!r}")
    try:
        GroupThresholds(**(data.get("groups") or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: data.groups: {exc}") from None
    model = config.setdefault("model", {"name": "small"})
    if not isinstance(model, dict) or "name" not in model:
        raise ConfigError(f"{where}: model.name is required")
    head = config.setdefault("head", {"name": "softmax"})
    if not isinstance(head, dict) or "name" not in head:
        raise ConfigError(f"{where}: head.name is required")
    TrainConfig.from_dict(config.setdefault("train", {}), f"{where}: train")
    pre = config.get("pretrain")
    if pre is not None:
        _check_keys(pre, PRETRAIN_KEYS, f"{where}: pretrain")
        if pre.get("subset", "AB") not in SUBSETS:
            raise ConfigError(f"{where}: pretrain.subset must be one of {', '.join(SUBSETS)}")
        if pre.get("tail_init", "random") not in TAIL_INITS:
            raise ConfigError(f"{where}: pretrain.tail_init must be one of {', '.join(TAIL_INITS)}, "
                              f"got {pre['tail_init']!r}")
        TrainConfig.from_dict({**config["train"], **(pre.get("train") or {})}, f"{where}: pretrain.train")
    _check_keys(config.setdefault("eval", {}), EVAL_KEYS, f"{where}: eval")
    return config


def override_epochs(config: dict, total: int) -> dict:
    """Set the total epoch budget; AB-ABCD keeps its pretrain/fine-tune proportion."""
    config = copy.deepcopy(config)
    pre = config.get("pretrain")
    if pre is None:
        config["train"]["epochs"] = total
        return config
    pre_train = pre.setdefault("train", {})
    pre_epochs = pre_train.get("epochs", config["train"].get("epochs", TrainConfig.epochs))
    ft_epochs = config["train"].get("epochs", TrainConfig.epochs)
    first = min(max(1, round(total * pre_epochs / (pre_epochs + ft_epochs))), max(1, total - 1))
    pre_train["epochs"], config["train"]["epochs"] = first, max(1, total - first)
    return config


def select_subset(faceset: FaceSet, subset: str, groups: dict | None) -> FaceSet:
    """ABCD: every class; AB: head classes only (relabelled densely, class names kept)."""
    if subset == "ABCD":
        return faceset
    head, _ = head_tail_split(faceset.class_counts(), GroupThresholds(**(groups or {})))
    if not len(head):
        raise ConfigError(f"{faceset.source}: no head (A+B) classes with groups {groups or 'default'}")
    keep = np.flatnonzero(np.isin(faceset.labels, head))
    return faceset.subset(keep, relabel=True)


def init_from_pretrained(model, head, pretrained: Path, class_names: list[str], tail_init: str) -> None:
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
    with torch.no_grad():
        if tail_init == "mean_of_head":
            head.weight[:] = old_rows.mean(0).to(head.weight.dtype)
        head.weight[new_rows] = old_rows.to(head.weight.dtype)


def _stage(name: str, config: dict, faceset: FaceSet, cfg: TrainConfig, out: Path, init=None) -> Path:
    final = out / "final.pt"
    if final.is_file():
        _say(f"{name}: reusing {final}")
        return final
    torch.manual_seed(cfg.seed)
    model_kw = {k: v for k, v in config["model"].items() if k != "name"}
    model = build_model(config["model"]["name"], **model_kw)
    head_kw = {k: v for k, v in config["head"].items() if k != "name"}
    embedding = model_kw.get("embedding_size", 512)
    try:
        head = build_head(config["head"]["name"], embedding, faceset.num_classes, **head_kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"head {config['head']['name']!r}: {exc}") from None
    if init is not None and not (out / "last.pt").is_file():
        init(model, head)
    _say(f"{name}: {len(faceset)} images, {faceset.num_classes} classes, {cfg.epochs} epochs -> {out}")
    return fit(model, head, faceset, cfg, out, extra_meta={"stage": name})


def run_experiment(config: dict, out_dir, data: str | None = None, epochs: int | None = None,
                   train_overrides: dict | None = None) -> dict:
    """Run every stage of a (validated) experiment; returns ``{"final": path, "metrics": dict|None}``."""
    config = validate_experiment(config)
    if data is not None:
        config["data"]["train"] = data
    if epochs is not None:
        config = override_epochs(config, epochs)
    if train_overrides:
        config["train"].update(train_overrides)
        if config.get("pretrain") is not None:
            config["pretrain"].setdefault("train", {}).update(train_overrides)
    out = Path(out_dir)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # one process group for every stage (re-initialising it between stages can hang under torchrun)
    train_cfg = TrainConfig.from_dict(config["train"])
    device = resolve_device(train_cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
    info = ddp.init_distributed(device.type == "cuda")
    try:
        return _run_stages(config, out)
    finally:
        ddp.shutdown(info)


def _run_stages(config: dict, out: Path) -> dict:
    from tailface.data.open import open_faceset

    spec = config["data"].get("train", "synthetic")
    faceset = open_faceset(spec, **(config["data"].get("options") or {}))
    faceset.check_labels()
    groups = config["data"].get("groups")
    train_set = select_subset(faceset, config["data"].get("subset", "ABCD"), groups)
    init = None
    pre = config.get("pretrain")
    if pre is not None:
        pre_cfg = TrainConfig.from_dict({**config["train"], **(pre.get("train") or {})}, "pretrain.train")
        pre_set = select_subset(faceset, pre.get("subset", "AB"), groups)
        pretrained = _stage("pretrain", config, pre_set, pre_cfg, out / "pretrain")
        tail_init = pre.get("tail_init", "random")

        def init(model, head):
            init_from_pretrained(model, head, pretrained, train_set.class_names, tail_init)
    final = _stage("train", config, train_set, TrainConfig.from_dict(config["train"]), out / "train", init)
    metrics = None
    protocols = config["eval"].get("protocols")
    if protocols and is_main_process():
        metrics = evaluate(final, protocols, out / "eval", config["eval"].get("batch_size", 64))
    return {"final": final, "metrics": metrics}


def evaluate(final: Path, protocols, out: Path, batch_size: int = 64) -> dict:
    import json

    metrics_path = out / "metrics.json"
    if metrics_path.is_file() and metrics_path.stat().st_mtime >= final.stat().st_mtime:
        _say(f"eval: reusing {metrics_path}")
        return json.loads(metrics_path.read_text())
    try:
        from tailface.eval.api import evaluate_checkpoint
    except ImportError as exc:
        raise ConfigError(f"eval.protocols is set but the evaluation module is unavailable ({exc}); "
                          f"remove eval.protocols or run `tailface eval {final}` later") from None
    return evaluate_checkpoint(final, protocols, out, batch_size=batch_size)
