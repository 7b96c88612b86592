"""``HeadSpec``: the ``head:`` block of an experiment, parsed once.

``head: {name: arcface, s: 32, m: 0.4}`` -> ``HeadSpec("arcface", {"s": 32, "m": 0.4})``;
``spec.margin`` is the typed :class:`~tailface.heads.margins.Margin` (kind, scale, value) for
margin heads (softmax, CosFace, ArcFace, any head registered with a margin) and None for the
others (center loss, range loss). Heads are built from it by
:func:`tailface.train.checkpoint.build_head` (which records the spec in checkpoints).

Two keys of the block are not head arguments: ``sharded`` (``false``, the default; ``true``; or
``auto``) and ``sample_rate`` (Partial FC negative sampling, ``(0, 1]``, default 1), which select
the class-sharded heads (the heads registered with a sharded builder,
:func:`~tailface.heads.base.shardable_heads`: softmax / CosFace / ArcFace, and the method's
dispersion head) under torchrun; see docs/training.md, "Sharded classifier".
``sharded: auto`` shards from :data:`AUTO_MIN_CLASSES` (100,000) classes on
when there is more than one rank, and whenever ``sample_rate < 1``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from tailface.data.label_space import ClassStats
from tailface.errors import ConfigError
from tailface.heads.base import create_head, default_margin, list_heads, shardable_heads
from tailface.heads.margins import Margin
from tailface.heads.sharded import group_rank_and_size

AUTO_MIN_CLASSES = 100_000  # ``sharded: auto`` shards from this many classes on (with more than one rank)


@dataclass(frozen=True)
class HeadSpec:
    name: str = "softmax"
    kwargs: dict[str, Any] = field(default_factory=dict)
    sharded: bool | str = False  # true | false | "auto"
    sample_rate: float = 1.0

    @classmethod
    def from_block(cls, block: dict | None, where: str = "head") -> HeadSpec:
        if block is not None and not isinstance(block, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(block).__name__}")
        block = dict(block if block is not None else {"name": "softmax"})
        if not isinstance(block.get("name"), str):
            raise ConfigError(f"{where}.name is required (one of {', '.join(list_heads())})")
        name = block.pop("name")
        if name not in list_heads():
            raise ConfigError(f"{where}.name: unknown head {name!r}; known: {', '.join(list_heads())}")
        sharded, sample_rate = block.pop("sharded", False), block.pop("sample_rate", 1.0)
        _check_sharding(name, sharded, sample_rate, where)
        spec = cls(name, block, sharded, float(sample_rate))
        try:
            # the head's own argument checks, RNG untouched; placeholder statistics for the heads
            # that need them (create_head gives them to no other head)
            with torch.random.fork_rng(devices=[]):
                create_head(name, 4, 2, class_stats=ClassStats.placeholder(2), **block)
            _ = spec.margin
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} {name!r}: {exc}") from None
        return spec

    @property
    def margin(self) -> Margin | None:
        default = default_margin(self.name)
        if default is None:
            return None
        kw = self.kwargs
        return dataclasses.replace(default, scale=float(kw.get("s", default.scale)),
                                   value=float(kw.get("m", default.value)),
                                   easy_margin=bool(kw.get("easy_margin", default.easy_margin)))

    def use_sharded(self, num_classes: int) -> bool:
        """Whether the head of ``num_classes`` classes is built sharded: ``sharded: true``; ``auto``
        with ``sample_rate < 1`` (only the sharded heads sample) or, under a process group of more
        than one rank, from :data:`AUTO_MIN_CLASSES` classes on; never for ``false``."""
        if self.sharded == "auto":
            return self.sample_rate < 1.0 or (group_rank_and_size()[1] > 1 and num_classes >= AUTO_MIN_CLASSES)
        return self.sharded is True

    def to_block(self) -> dict:
        block = {"name": self.name, **self.kwargs}
        if self.sharded is not False:
            block["sharded"] = self.sharded
        if self.sample_rate != 1.0:
            block["sample_rate"] = self.sample_rate
        return block


def _check_sharding(name: str, sharded: Any, sample_rate: Any, where: str) -> None:
    if sharded is not True and sharded is not False and sharded != "auto":
        raise ConfigError(f"{where}.sharded must be true, false or auto, got {sharded!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not 0 < sample_rate <= 1:
        raise ConfigError(f"{where}.sample_rate must be a number in (0, 1], got {sample_rate!r}")
    if sharded is False and sample_rate < 1:
        raise ConfigError(f"{where}.sample_rate < 1 (negative sampling) needs the sharded head: set "
                          f"{where}.sharded to true or auto")
    if sharded is not False and name not in shardable_heads():
        raise ConfigError(f"{where}.sharded: head {name!r} has no sharded version (sharded heads: "
                          f"{', '.join(shardable_heads())})")
