"""Classification heads: small modules taking (features, labels) and returning the loss.

Every head exposes its classifier as ``head.weight`` (``num_classes x embedding_size``; sub-center
ArcFace ``num_classes x K x embedding_size``) and returns a :class:`HeadOutput`;
``logits``/``targets`` (when not None) give training accuracy as
``(logits.argmax(1) == targets).float().mean()``.

The registry (``register_head``) is the one list of heads: per name its builder, its default
margin (margin heads), its class-sharded builder (heads that can be sharded) and whether it needs
the training set's class statistics; ``HeadSpec``, ``build_head`` and ``build_sharded_head`` ask
it instead of keeping lists of names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from tailface.data.label_space import ClassStats
from tailface.heads.margins import Margin


@dataclass
class HeadOutput:
    loss: torch.Tensor
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None

    def accuracy(self) -> float | None:
        if self.logits is None or self.targets is None:
            return None
        return (self.logits.detach().argmax(1) == self.targets).float().mean().item()


@dataclass(frozen=True)
class HeadEntry:
    """What ``register_head`` recorded for one head name."""

    builder: Callable[..., nn.Module]
    margin: Margin | None = None
    sharded: Callable[..., nn.Module] | None = None
    needs_class_stats: bool = False


_HEADS: dict[str, HeadEntry] = {}


def register_head(name: str, margin: Margin | None = None, sharded: Callable[..., nn.Module] | None = None,
                  needs_class_stats: bool = False):
    """Decorator for ``builder(embedding_size, num_classes, **kwargs) -> nn.Module``.

    ``margin``: for heads that are a margin on a softmax over the classifier rows (softmax,
    CosFace, ArcFace), their default :class:`Margin` (kind, ``s``, ``m``); such heads take ``s``
    and ``m`` keyword arguments, and the method's dispersion head can apply the same margin.
    ``sharded``: the class-sharded version, ``sharded(embedding_size, num_classes, *, sample_rate,
    seed, **kwargs)`` (this rank's rows; see :mod:`tailface.heads.sharded`); a head without one
    cannot be sharded. ``needs_class_stats``: both builders take a keyword ``class_stats`` (a
    :class:`~tailface.data.label_space.ClassStats` of the training set); other builders never get it."""

    def wrap(builder):
        if name in _HEADS:
            raise ValueError(f"head {name!r} registered twice")
        _HEADS[name] = HeadEntry(builder, margin, sharded, bool(needs_class_stats))
        return builder

    return wrap


def _entry(name: str) -> HeadEntry:
    if name not in _HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(sorted(_HEADS))}")
    return _HEADS[name]


def default_margin(name: str) -> Margin | None:
    """The default margin of a registered margin head, None for other heads (center loss, ...)."""
    entry = _HEADS.get(name)
    return None if entry is None else entry.margin


def margin_heads() -> list[str]:
    return sorted(name for name, entry in _HEADS.items() if entry.margin is not None)


def needs_class_stats(name: str) -> bool:
    """Whether head ``name``'s builders take the training set's ``class_stats``."""
    return _entry(name).needs_class_stats


def shardable_heads() -> list[str]:
    """The heads registered with a sharded builder."""
    return sorted(name for name, entry in _HEADS.items() if entry.sharded is not None)


def _stats_kwargs(name: str, entry: HeadEntry, num_classes: int, class_stats: ClassStats | None) -> dict:
    """``{"class_stats": ...}`` for a head that needs them (checked), ``{}`` for the others."""
    if not entry.needs_class_stats:
        return {}
    if class_stats is None:
        raise ValueError(f"head {name!r} needs the training set's class statistics (class_stats), none given")
    if class_stats.num_classes != num_classes:
        raise ValueError(f"head {name!r}: class_stats describe {class_stats.num_classes} classes, "
                         f"the head has {num_classes}")
    return {"class_stats": class_stats}


def create_head(name: str, embedding_size: int, num_classes: int, class_stats: ClassStats | None = None,
                **kwargs) -> nn.Module:
    """Head ``name``; ``class_stats`` is passed on only to a head registered with
    ``needs_class_stats`` (ValueError when such a head gets none)."""
    entry = _entry(name)
    stats = _stats_kwargs(name, entry, num_classes, class_stats)
    return entry.builder(embedding_size=embedding_size, num_classes=num_classes, **stats, **kwargs)


def create_sharded_head(name: str, embedding_size: int, num_classes: int, *, sample_rate: float = 1.0,
                        seed: int = 0, class_stats: ClassStats | None = None, **kwargs) -> nn.Module:
    """The class-sharded version of head ``name`` (this rank's rows); ValueError for a head
    registered without one. ``class_stats`` as for :func:`create_head`."""
    entry = _entry(name)
    if entry.sharded is None:
        raise ValueError(f"head {name!r} has no sharded version (sharded heads: {', '.join(shardable_heads())})")
    stats = _stats_kwargs(name, entry, num_classes, class_stats)
    return entry.sharded(embedding_size, num_classes, sample_rate=sample_rate, seed=seed, **stats, **kwargs)


def list_heads() -> list[str]:
    return sorted(_HEADS)
