"""Experiment kinds: the registry that says what an experiment config runs.

A *kind* (:class:`ExperimentKind`) declares

- its config blocks (:class:`KindBlock`: the block's name, its parser and its writer), beside the
  blocks every kind shares (:data:`COMMON_BLOCKS`);
- its stages, ``stages(cfg, out, faceset, command) -> list[Stage]`` (:mod:`tailface.experiment.stages`);
- its training stages and their train blocks (``training_stages``, ``first_stage``,
  ``stage_changes``), its checks (``validate``) and the command line's changes (``with_epochs``,
  ``with_train``);
- where its results are, relative to the experiment folder: ``final`` (the experiment's model),
  ``metrics`` (its evaluation), ``report`` (a summary page, or None).

A config's kind is inferred from its blocks, so that ``OUT/config.yaml`` holds no extra key: a
config with a block of kind K is of kind K; a config with no kind's block is of the *default*
kind (the baseline). Blocks of two kinds in one config are an error (:meth:`ExperimentConfig.validate`).

A new kind is one module with a subclass of :class:`ExperimentKind` decorated by
:func:`register_kind`, plus its import in ``tailface/experiment/__init__.py`` (docs/architecture.md,
"Adding an experiment kind"). The runner, the config, ``tailface reproduce`` and ``tailface study``
ask this registry; nothing else branches on the kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tailface.data.faceset import FaceSet
from tailface.errors import ConfigError
from tailface.experiment.stages import Stage

if TYPE_CHECKING:  # config.py imports this module
    from tailface.experiment.config import ExperimentConfig

COMMON_BLOCKS = ("name", "data", "model", "head", "train", "eval")  # every kind's; the kinds add theirs


@dataclass(frozen=True)
class KindBlock:
    """One config block of a kind: ``parse(block, where)`` returns the parsed block (raising
    ConfigError on bad input); ``dump(parsed)`` the mapping written to ``OUT/config.yaml`` (which
    ``parse`` reads back equal)."""

    name: str
    parse: Callable[[Any, str], Any]
    dump: Callable[[Any], dict]


class ExperimentKind:
    """One kind of experiment. Subclasses set the class attributes and override ``stages``; the
    other methods have defaults for a kind with one training stage ``train`` using the train block
    as written."""

    name: ClassVar[str]  # the kind's name ("baseline", "aggregate-and-disperse")
    label: ClassVar[str] = ""  # how messages name it ("the method"); default "the <name> kind"
    blocks: ClassVar[tuple[KindBlock, ...]] = ()  # its own config blocks
    default: ClassVar[bool] = False  # the kind of a config without any kind's block (one kind)
    final: ClassVar[str]  # its model, relative to the experiment folder ("train/final.pt")
    metrics: ClassVar[str] = "eval/metrics.json"  # its evaluation's metrics.json, relative
    report: ClassVar[str | None] = None  # its summary page, relative, or None
    starts_from_base: ClassVar[bool] = False  # may start from another experiment's model (reproduce: a dependency)

    def stages(self, cfg: ExperimentConfig, out: Path, faceset: FaceSet, command: str) -> list[Stage]:
        """Every stage of the experiment, in order, writing under ``out``."""
        raise NotImplementedError

    def training_stages(self, cfg: ExperimentConfig) -> list[str]:
        """The names of the stages that train (each has a :meth:`ExperimentConfig.stage_train`)."""
        return ["train"]

    def first_stage(self, cfg: ExperimentConfig) -> str:
        """The training stage whose ``device`` the runner joins the process group for."""
        return self.training_stages(cfg)[0]

    def stage_changes(self, cfg: ExperimentConfig, stage: str) -> tuple[dict, str]:
        """``(changes, where)``: the changes a training stage makes to the train block, and the
        place error messages name."""
        return {}, f"{cfg.source}: train"

    def validate(self, cfg: ExperimentConfig) -> None:
        """The kind's checks of a whole config (the train config of every training stage)."""
        for stage in self.training_stages(cfg):
            cfg.stage_train(stage)

    def with_epochs(self, cfg: ExperimentConfig, total: int) -> ExperimentConfig:
        """``--epochs total``: the config with that total epoch budget."""
        return dataclasses.replace(cfg, train={**cfg.train, "epochs": total})

    def with_train(self, cfg: ExperimentConfig, changes: dict) -> ExperimentConfig:
        """``cfg`` (its train block already changed) with ``changes`` winning over every stage's own."""
        return cfg

    def describe(self) -> str:
        return self.label or f"the {self.name} kind"


_KINDS: dict[str, ExperimentKind] = {}
_OWNERS: dict[str, ExperimentKind] = {}  # block name -> the kind that declared it


def register_kind(cls: type[ExperimentKind]) -> type[ExperimentKind]:
    """Class decorator: registers one instance of an :class:`ExperimentKind` subclass. ValueError
    when its name is taken, a block is claimed already (by another kind or :data:`COMMON_BLOCKS`)
    or a second kind says it is the default."""
    kind = cls()
    if kind.name in _KINDS:
        raise ValueError(f"experiment kind {kind.name!r} registered twice")
    for block in kind.blocks:
        if block.name in COMMON_BLOCKS:
            raise ValueError(f"experiment kind {kind.name!r}: block {block.name!r} is a block of every kind")
        if block.name in _OWNERS:
            raise ValueError(f"experiment kind {kind.name!r}: block {block.name!r} belongs to the kind "
                             f"{_OWNERS[block.name].name!r}")
    if kind.default and any(k.default for k in _KINDS.values()):
        raise ValueError(f"experiment kind {kind.name!r}: {default_kind().name!r} is the default kind already")
    _KINDS[kind.name] = kind
    _OWNERS.update({block.name: kind for block in kind.blocks})
    return cls


def list_kinds() -> list[str]:
    """The registered kinds, in registration order."""
    return list(_KINDS)


def kind_named(name: str) -> ExperimentKind:
    if name not in _KINDS:
        raise ConfigError(f"unknown experiment kind {name!r}; known: {', '.join(_KINDS)}")
    return _KINDS[name]


def default_kind() -> ExperimentKind:
    for kind in _KINDS.values():
        if kind.default:
            return kind
    raise ConfigError("no default experiment kind is registered (tailface.experiment.baseline)")


def kind_blocks() -> list[KindBlock]:
    """Every registered kind's blocks, in registration order."""
    return [block for kind in _KINDS.values() for block in kind.blocks]


def block_owner(block: str) -> ExperimentKind:
    """The kind that declared the config block ``block``."""
    return _OWNERS[block]


def kind_of_blocks(blocks: Iterable[str]) -> ExperimentKind:
    """The kind of a config holding ``blocks`` (block names): the first registered non-default
    kind with a block among them, else the default kind."""
    present = set(blocks)
    for kind in _KINDS.values():
        if not kind.default and any(block.name in present for block in kind.blocks):
            return kind
    return default_kind()


def kind_of(cfg: ExperimentConfig) -> ExperimentKind:
    """The kind of an experiment config (from the kind blocks it holds)."""
    return kind_of_blocks(cfg.kind_blocks)
