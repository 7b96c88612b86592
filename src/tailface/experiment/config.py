"""``ExperimentConfig``: an experiment YAML, validated once, for ``tailface train`` and ``tailface run``.

Blocks (docs/training.md has every key)::

    name: my-experiment          # optional label
    data:    {train: SPEC, groups: {a: 21, b: 10, c: 4}, subset: ABCD | AB, options: {...}}
    model:   {name: small, input_size: 32, embedding_size: 128, ...model kwargs}
    head:    {name: softmax | cosface | arcface | center_loss | range_loss, ...head kwargs}
    train:   TrainConfig fields (tailface.train.config)
    eval:    {protocols: [blufr, lfw, megaface-proxy], batch_size: 64}
    pretrain: {subset: AB, tail_init: random | mean_of_head, train: {...}}   # baselines: AB-ABCD
    method:  MethodConfig fields (tailface.method.config)                    # aggregate-and-disperse

A config with a ``method`` block runs the aggregate-and-disperse pipeline; one without runs a
baseline. Every block is checked when the file is read, before any stage starts.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tailface.data.groups import GroupThresholds
from tailface.errors import ConfigError
from tailface.heads.spec import HeadSpec
from tailface.method.config import MethodConfig
from tailface.train.config import TrainConfig
from tailface.yaml_config import read_yaml, unknown_key

SUBSETS = ("A", "AB", "ABC", "ABCD")
TAIL_INITS = ("random", "mean_of_head")
BLOCKS = ("name", "data", "model", "head", "train", "eval", "pretrain", "method")


def as_mapping(block: Any, where: str) -> dict:
    """``block`` as a dict ({} for None); ConfigError when it is not a mapping."""
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(block).__name__}")
    return dict(block)


def check_keys(block: Any, known, where: str) -> dict:
    """``block`` as a dict ({} for None); ConfigError naming an unknown key and the known ones."""
    block = as_mapping(block, where)
    unknown = sorted(set(block) - set(known))
    if unknown:
        raise unknown_key(where, unknown[0], known)
    return dict(block)


def _positive_int(value, where: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ConfigError(f"{where} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class DataConfig:
    """``subset``: the groups whose classes are trained on (``AB``: head classes only);
    ``tail_share``: a further share of the classes of later groups (``{C: 0.25}``: AB plus a
    quarter of C's classes, drawn with ``subset_seed``; the tail sweep); ``sample``: first draw a
    subset of the images, ``{kind: uniform | long-tail, identities: N, images: M, seed: s}``, with
    N identities and M images either (nearly) evenly or long-tail distributed (Fig. 3); ``holdout``:
    ``{fraction: 0.2, seed: 0, min_images: 2}`` keeps that share of the identities with at least
    ``min_images`` images out of training, as the test identities of the ``heldout`` protocol
    (``tailface study``)."""

    train: str = "synthetic"
    groups: GroupThresholds = GroupThresholds()
    subset: str = "ABCD"
    options: dict = field(default_factory=dict)
    tail_share: dict = field(default_factory=dict)
    subset_seed: int = 0
    sample: dict = field(default_factory=dict)
    holdout: dict = field(default_factory=dict)

    @classmethod
    def from_block(cls, block, where: str = "data") -> DataConfig:
        block = check_keys(block, ("train", "groups", "subset", "options", "tail_share", "subset_seed", "sample",
                                   "holdout"), where)
        subset = block.get("subset", "ABCD")
        if subset not in SUBSETS:
            raise ConfigError(f"{where}.subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
        share = check_keys(block.get("tail_share"), [g for g in "ABCD" if g not in subset], f"{where}.tail_share")
        for g, v in share.items():
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1):
                raise ConfigError(f"{where}.tail_share.{g} must be a fraction in [0, 1], got {v!r}")
        seed = block.get("subset_seed", 0)
        if not (isinstance(seed, int) and not isinstance(seed, bool)):
            raise ConfigError(f"{where}.subset_seed must be an integer, got {seed!r}")
        groups = check_keys(block.get("groups"), ("a", "b", "c"), f"{where}.groups")
        try:
            thresholds = GroupThresholds(**{k: int(v) for k, v in groups.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.groups: {exc}") from None
        options = as_mapping(block.get("options"), f"{where}.options")
        sample = check_keys(block.get("sample"), ("kind", "identities", "images", "seed"), f"{where}.sample")
        if sample:
            if sample.get("kind") not in ("uniform", "long-tail"):
                raise ConfigError(f"{where}.sample.kind must be uniform or long-tail, got {sample.get('kind')!r}")
            for key in ("identities", "images"):
                _positive_int(sample.get(key), f"{where}.sample.{key}")
        holdout = check_keys(block.get("holdout"), ("fraction", "seed", "min_images"), f"{where}.holdout")
        if holdout:
            fraction = holdout.get("fraction", 0.2)
            if not (isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction < 1):
                raise ConfigError(f"{where}.holdout.fraction must be in (0, 1), got {fraction!r}")
            _positive_int(holdout.get("min_images", 2), f"{where}.holdout.min_images")
            if not isinstance(holdout.get("seed", 0), int):
                raise ConfigError(f"{where}.holdout.seed must be an integer, got {holdout.get('seed')!r}")
        return cls(str(block.get("train", "synthetic")), thresholds, subset, options, share, seed, sample, holdout)

    def to_block(self) -> dict:
        block: dict[str, Any] = {"train": self.train, "groups": dataclasses.asdict(self.groups), "subset": self.subset,
                 "options": dict(self.options)}
        if self.tail_share:
            block.update(tail_share=dict(self.tail_share), subset_seed=self.subset_seed)
        if self.sample:
            block["sample"] = dict(self.sample)
        if self.holdout:
            block["holdout"] = dict(self.holdout)
        return block

    def _heldout_classes(self, faceset) -> np.ndarray:
        """The held-out identities: ``fraction`` of those with >= ``min_images`` images, by ``seed``."""
        counts = faceset.class_counts()
        eligible = np.flatnonzero(counts >= int(self.holdout.get("min_images", 2)))
        n = int(round(float(self.holdout.get("fraction", 0.2)) * len(eligible)))
        if n < 2:
            raise ConfigError(f"{self.train}: data.holdout leaves {n} test identities; it needs at least 2 "
                              f"(identities with >= {self.holdout.get('min_images', 2)} images: {len(eligible)})")
        rng = np.random.default_rng([int(self.holdout.get("seed", 0)), 7])
        return np.sort(rng.choice(eligible, n, replace=False))

    def open_heldout(self):
        """The held-out test identities of ``holdout`` (all their images), labels renumbered."""
        if not self.holdout:
            raise ConfigError("the heldout protocol needs data.holdout (the identities kept out of training)")
        faceset = self._open_all()
        held = self._heldout_classes(faceset)
        return faceset.subset(np.flatnonzero(np.isin(faceset.labels, held)), relabel=True)

    def _open_all(self):
        from tailface.data.open import open_faceset

        faceset = open_faceset(self.train, **self.options)
        faceset.check_labels()
        return faceset

    def open(self):
        """The training set: the dataset spec opened with ``options``, the ``holdout`` identities
        removed, then ``sample`` drawn."""
        from tailface.data.subsets import long_tail_subset, uniform_subset

        faceset = self._open_all()
        if self.holdout:
            held = self._heldout_classes(faceset)
            faceset = faceset.subset(np.flatnonzero(~np.isin(faceset.labels, held)), relabel=True)
        if not self.sample:
            return faceset
        draw = uniform_subset if self.sample["kind"] == "uniform" else long_tail_subset
        try:
            indices = draw(faceset.labels, self.sample["identities"], self.sample["images"],
                           seed=int(self.sample.get("seed", 0)))
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"data.sample ({self.train}): {exc}") from None
        return faceset.subset(indices, relabel=True)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small"
    input_size: int | None = None
    embedding_size: int = 512
    kwargs: dict = field(default_factory=dict)  # the backbone's own options (width, dropout, ...)

    @classmethod
    def from_block(cls, block, where: str = "model") -> ModelConfig:
        from tailface.models import list_models

        block = as_mapping(block, where) if block is not None else {"name": "small"}
        name = block.pop("name", None)
        if name not in list_models():
            raise ConfigError(f"{where}.name: unknown model {name!r}; known: {', '.join(list_models())}")
        input_size = block.pop("input_size", None)
        if input_size is not None:
            _positive_int(input_size, f"{where}.input_size")
        embedding = _positive_int(block.pop("embedding_size", 512), f"{where}.embedding_size")
        return cls(name, input_size, embedding, block)

    def build_kwargs(self) -> dict:
        """Keyword arguments of ``build_model(name, ...)``, as earlier tailface versions passed them."""
        kw = dict(self.kwargs)
        if self.input_size is not None:
            kw["input_size"] = self.input_size
        kw["embedding_size"] = self.embedding_size
        return kw

    def to_block(self) -> dict:
        return {"name": self.name, **({"input_size": self.input_size} if self.input_size else {}),
                "embedding_size": self.embedding_size, **self.kwargs}


@dataclass(frozen=True)
class EvalConfig:
    protocols: tuple[str, ...] = ()
    batch_size: int = 64
    during_training: Any = None  # validation during training: tailface.eval.during_training.DuringTraining

    @classmethod
    def from_block(cls, block, where: str = "eval") -> EvalConfig:
        from tailface.eval.during_training import parse_during_training
        from tailface.eval.protocols import parse_protocols

        block = check_keys(block, ("protocols", "batch_size", "during_training"), where)
        protocols = block.get("protocols") or []
        try:
            protocols = parse_protocols(protocols) if protocols else []
        except ConfigError as exc:
            raise ConfigError(f"{where}.protocols: {exc}") from None
        return cls(tuple(protocols), _positive_int(block.get("batch_size", 64), f"{where}.batch_size"),
                   parse_during_training(block.get("during_training"), f"{where}.during_training"))

    def to_block(self) -> dict:
        block = {"protocols": list(self.protocols), "batch_size": self.batch_size}
        if self.during_training is not None:
            block["during_training"] = self.during_training.to_block()
        return block


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
        return cls(subset, tail_init, check_keys(block.get("train"), _train_keys(), f"{where}.train"))

    def to_block(self) -> dict:
        return {"subset": self.subset, "tail_init": self.tail_init, "train": dict(self.train)}


def _train_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


@dataclass(frozen=True)
class ExperimentConfig:
    name: str | None = None
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    head: HeadSpec = HeadSpec()
    train: dict = field(default_factory=dict)  # the train block as written (+ overrides); see stage_train
    eval: EvalConfig = EvalConfig()
    pretrain: PretrainConfig | None = None
    method: MethodConfig | None = None
    source: str = "<config>"  # the file it was read from, for messages

    @classmethod
    def from_dict(cls, doc: dict, where: str = "<config>") -> ExperimentConfig:
        doc = check_keys(doc, BLOCKS, where)
        name = doc.get("name")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{where}: name must be a string, got {name!r}")
        train = check_keys(doc.get("train"), _train_keys(), f"{where}: train")
        cfg = cls(name=name,
                  data=DataConfig.from_block(doc.get("data"), f"{where}: data"),
                  model=ModelConfig.from_block(doc.get("model"), f"{where}: model"),
                  head=HeadSpec.from_block(doc.get("head"), f"{where}: head"),
                  train=train,
                  eval=EvalConfig.from_block(doc.get("eval"), f"{where}: eval"),
                  pretrain=None if doc.get("pretrain") is None else PretrainConfig.from_block(doc["pretrain"],
                                                                                                f"{where}: pretrain"),
                  method=None if doc.get("method") is None else MethodConfig.from_dict(doc["method"],
                                                                                        f"{where}: method"),
                  source=where)
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> ExperimentConfig:
        doc = read_yaml(path)
        if not doc:
            raise ConfigError(f"{path}: empty config; an experiment needs its blocks (at least data and model; "
                              f"valid blocks: {', '.join(BLOCKS)})")
        return cls.from_dict(doc, str(path))

    def validate(self) -> None:
        """Every stage's training configuration and the combinations of blocks, up front."""
        where = self.source
        if "heldout" in self.eval.protocols and not self.data.holdout:
            raise ConfigError(f"{where}: eval.protocols: 'heldout' needs data.holdout (the test identities kept "
                              "out of training)")
        if self.method is not None:
            if self.pretrain is not None:
                raise ConfigError(f"{where}: pretrain is a baseline block; the method has its own stages")
            if self.data.subset != "ABCD" or self.data.tail_share:
                raise ConfigError(f"{where}: data.subset must be ABCD for the method (it splits head and tail itself)")
            if self.head.margin is None:
                from tailface.heads.base import margin_heads

                raise ConfigError(f"{where}: head.name: the method supports {', '.join(margin_heads())}, "
                                  f"got {self.head.name!r}")
            for stage in self.method.stage_names():
                self.stage_train(stage)
        else:
            self.stage_train("train")
            if self.pretrain is not None:
                self.stage_train("pretrain")
                if self.data.tail_share:
                    raise ConfigError(f"{where}: data.tail_share is not supported with a pretrain stage")

    @property
    def seed(self) -> int:
        """The train block's seed (the method's clustering uses it too)."""
        return int(self.train.get("seed", TrainConfig.seed))

    def stage_train(self, stage: str) -> TrainConfig:
        """The TrainConfig of a stage: the train block, then the stage's own changes (baselines:
        ``pretrain.train``; the method: its epochs, learning rate and ``method.<stage>_train``)."""
        changes: dict = {}
        if self.method is not None:
            changes = self.method.stage_changes(stage, TrainConfig.from_dict(self.train, f"{self.source}: train"))
            where = f"{self.source}: train + method.{stage}_train"
        elif stage == "pretrain" and self.pretrain is not None:
            changes, where = dict(self.pretrain.train), f"{self.source}: pretrain.train"
        else:
            where = f"{self.source}: train"
        return TrainConfig.from_dict({**self.train, **changes}, where)

    # -- changes from the command line ------------------------------------------------------------

    def with_data(self, spec: str | None) -> ExperimentConfig:
        return self if spec is None else dataclasses.replace(self, data=dataclasses.replace(self.data, train=spec))

    def with_epochs(self, total: int | None) -> ExperimentConfig:
        """The total epoch budget: a baseline's ``train.epochs`` (AB-ABCD keeps its pretrain /
        fine-tune proportion); the method's base model and prototype + dispersion budget."""
        if total is None:
            return self
        _positive_int(total, "--epochs")
        if self.method is not None:
            method = dataclasses.replace(self.method, base_epochs=total, budget=total, prototype_epochs=None,
                                         dispersion_epochs=None)
            return dataclasses.replace(self, method=method, train={**self.train, "epochs": total})
        if self.pretrain is None:
            return dataclasses.replace(self, train={**self.train, "epochs": total})
        pre_epochs = self.pretrain.train.get("epochs", self.train.get("epochs", TrainConfig.epochs))
        ft_epochs = self.train.get("epochs", TrainConfig.epochs)
        first = min(max(1, round(total * pre_epochs / (pre_epochs + ft_epochs))), max(1, total - 1))
        pretrain = dataclasses.replace(self.pretrain, train={**self.pretrain.train, "epochs": first})
        return dataclasses.replace(self, pretrain=pretrain, train={**self.train, "epochs": max(1, total - first)})

    def with_train(self, **changes) -> ExperimentConfig:
        """Changes to the train block that win over every stage's own (``--max-steps``, ``--device``)."""
        if not changes:
            return self
        cfg = dataclasses.replace(self, train={**self.train, **changes})
        if cfg.pretrain is not None:
            cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(
                cfg.pretrain, train={**cfg.pretrain.train, **changes}))
        if cfg.method is not None:
            cfg = dataclasses.replace(cfg, method=cfg.method.without_stage_keys(changes))
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        """The resolved configuration, as written to ``OUT/config.yaml`` (reads back the same)."""
        doc: dict = {}
        if self.name is not None:
            doc["name"] = self.name
        doc.update(data=self.data.to_block(), model=self.model.to_block(), head=self.head.to_block(),
                   train=copy.deepcopy(self.train), eval=self.eval.to_block())
        if self.pretrain is not None:
            doc["pretrain"] = self.pretrain.to_block()
        if self.method is not None:
            doc["method"] = self.method.to_dict()
        return doc
