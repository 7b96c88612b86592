"""``HeadSpec``: the ``head:`` block of an experiment, parsed once.

``head: {name: arcface, s: 32, m: 0.4}`` -> ``HeadSpec("arcface", {"s": 32, "m": 0.4})``;
``spec.margin`` is the typed :class:`~tailface.heads.margins.Margin` (kind, scale, value) for
margin heads (softmax, CosFace, ArcFace, any head registered with a margin) and None for the
others (center loss, range loss). Heads are built from it by
:func:`tailface.train.checkpoint.build_head` (which records the spec in checkpoints).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from tailface.errors import ConfigError
from tailface.heads.base import create_head, default_margin, list_heads
from tailface.heads.margins import Margin


@dataclass(frozen=True)
class HeadSpec:
    name: str = "softmax"
    kwargs: dict[str, Any] = field(default_factory=dict)

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
        spec = cls(name, block)
        try:
            with torch.random.fork_rng(devices=[]):  # the head's own argument checks, RNG untouched
                create_head(name, 4, 2, **block)
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

    def to_block(self) -> dict:
        return {"name": self.name, **self.kwargs}
