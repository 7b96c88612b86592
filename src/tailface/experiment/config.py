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

``pretrain`` and ``method`` are blocks of experiment kinds (:mod:`tailface.experiment.kinds`): a
config's kind follows from its kind blocks (a ``method`` block: aggregate-and-disperse; none: a
baseline), and the kind parses, checks and runs them. Every block is checked when the file is read,
before any stage starts.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailface.data.groups import GroupThresholds
from tailface.errors import ConfigError
from tailface.eval.during_training import parse_during_training
from tailface.eval.protocols import parse_protocols
from tailface.experiment.kinds import COMMON_BLOCKS, ExperimentKind, block_owner, kind_blocks, kind_of
from tailface.heads.spec import HeadSpec
from tailface.method.config import MethodConfig
from tailface.models import list_models
from tailface.train.config import TrainConfig
from tailface.yaml_config import read_yaml, unknown_key

if TYPE_CHECKING:  # the baseline kind's module imports this one
    from tailface.experiment.baseline import PretrainConfig

SUBSETS = ("A", "AB", "ABC", "ABCD")


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
    (``tailface study``). Configuration only: :mod:`tailface.data.training_set` opens the data and
    draws (``open_pool``, ``open_training_set``, ``open_heldout``; its doc lists the random streams)."""

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


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small"
    input_size: int | None = None
    embedding_size: int = 512
    kwargs: dict = field(default_factory=dict)  # the backbone's own options (width, dropout, ...)

    @classmethod
    def from_block(cls, block, where: str = "model") -> ModelConfig:
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


def train_keys() -> list[str]:
    """The keys of a train block (the fields of :class:`~tailface.train.config.TrainConfig`)."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def known_blocks() -> list[str]:
    """The top-level keys of an experiment config: the common blocks, then every registered
    kind's blocks (:mod:`tailface.experiment.kinds`)."""
    return [*COMMON_BLOCKS, *(block.name for block in kind_blocks())]


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: the common blocks, and the blocks of its kind (``kind_blocks``: block name ->
    the parsed block, only those present). Its kind (:attr:`kind`) follows from those blocks."""

    name: str | None = None
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    head: HeadSpec = HeadSpec()
    train: dict = field(default_factory=dict)  # the train block as written (+ overrides); see stage_train
    eval: EvalConfig = EvalConfig()
    kind_blocks: dict[str, Any] = field(default_factory=dict)  # e.g. {"method": MethodConfig(...)}
    source: str = "<config>"  # the file it was read from, for messages

    @classmethod
    def from_dict(cls, doc: dict, where: str = "<config>") -> ExperimentConfig:
        doc = check_keys(doc, known_blocks(), where)
        name = doc.get("name")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{where}: name must be a string, got {name!r}")
        train = check_keys(doc.get("train"), train_keys(), f"{where}: train")
        cfg = cls(name=name,
                  data=DataConfig.from_block(doc.get("data"), f"{where}: data"),
                  model=ModelConfig.from_block(doc.get("model"), f"{where}: model"),
                  head=HeadSpec.from_block(doc.get("head"), f"{where}: head"),
                  train=train,
                  eval=EvalConfig.from_block(doc.get("eval"), f"{where}: eval"),
                  kind_blocks={block.name: block.parse(doc[block.name], f"{where}: {block.name}")
                               for block in kind_blocks() if doc.get(block.name) is not None},
                  source=where)
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> ExperimentConfig:
        doc = read_yaml(path)
        if not doc:
            raise ConfigError(f"{path}: empty config; an experiment needs its blocks (at least data and model; "
                              f"valid blocks: {', '.join(known_blocks())})")
        return cls.from_dict(doc, str(path))

    @property
    def kind(self) -> ExperimentKind:
        """The experiment's kind (:func:`tailface.experiment.kinds.kind_of`)."""
        return kind_of(self)

    def block(self, name: str) -> Any:
        """The parsed kind block ``name``, or None when the config has none."""
        return self.kind_blocks.get(name)

    def with_block(self, name: str, parsed: Any) -> ExperimentConfig:
        """A copy with the kind block ``name`` replaced by ``parsed`` (not validated)."""
        return dataclasses.replace(self, kind_blocks={**self.kind_blocks, name: parsed})

    @property
    def pretrain(self) -> PretrainConfig | None:
        """The baseline's ``pretrain`` block (AB-ABCD), or None."""
        return self.kind_blocks.get("pretrain")

    @property
    def method(self) -> MethodConfig | None:
        """The aggregate-and-disperse ``method`` block, or None."""
        return self.kind_blocks.get("method")

    def validate(self) -> None:
        """Every stage's training configuration and the combinations of blocks, up front: blocks
        of one kind only, then the kind's own checks (:meth:`ExperimentKind.validate`)."""
        where = self.source
        if "heldout" in self.eval.protocols and not self.data.holdout:
            raise ConfigError(f"{where}: eval.protocols: 'heldout' needs data.holdout (the test identities kept "
                              "out of training)")
        kind = self.kind
        for block in self.kind_blocks:
            owner = block_owner(block)
            if owner is not kind:
                raise ConfigError(f"{where}: {block} is a {owner.name} block; {kind.describe()} has its own stages")
        kind.validate(self)

    @property
    def seed(self) -> int:
        """The train block's seed (the method's clustering uses it too)."""
        return int(self.train.get("seed", TrainConfig.seed))

    def stage_train(self, stage: str) -> TrainConfig:
        """The TrainConfig of a stage: the train block, then the changes the kind makes for the
        stage (:meth:`ExperimentKind.stage_changes`; baselines: ``pretrain.train``; the method: its
        epochs, learning rate and ``method.<stage>_train``)."""
        changes, where = self.kind.stage_changes(self, stage)
        return TrainConfig.from_dict({**self.train, **changes}, where)

    # -- changes from the command line ------------------------------------------------------------

    def with_data(self, spec: str | None) -> ExperimentConfig:
        return self if spec is None else dataclasses.replace(self, data=dataclasses.replace(self.data, train=spec))

    def with_epochs(self, total: int | None) -> ExperimentConfig:
        """The total epoch budget, as the kind spreads it over its stages (a baseline's
        ``train.epochs``, AB-ABCD keeping its pretrain / fine-tune proportion; the method's base
        model and prototype + dispersion budget)."""
        if total is None:
            return self
        _positive_int(total, "--epochs")
        return self.kind.with_epochs(self, total)

    def with_train(self, **changes) -> ExperimentConfig:
        """Changes to the train block that win over every stage's own (``--max-steps``, ``--device``)."""
        if not changes:
            return self
        cfg = dataclasses.replace(self, train={**self.train, **changes})
        cfg = cfg.kind.with_train(cfg, changes)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        """The resolved configuration, as written to ``OUT/config.yaml`` (reads back the same; no
        key names the kind: the blocks do)."""
        doc: dict = {}
        if self.name is not None:
            doc["name"] = self.name
        doc.update(data=self.data.to_block(), model=self.model.to_block(), head=self.head.to_block(),
                   train=copy.deepcopy(self.train), eval=self.eval.to_block())
        for block in kind_blocks():
            if block.name in self.kind_blocks:
                doc[block.name] = block.dump(self.kind_blocks[block.name])
        return doc
