"""Classification heads: small modules taking (features, labels) and returning the loss.

Every head exposes its classifier as ``head.weight`` (``num_classes x embedding_size``) and returns a
:class:`HeadOutput`; ``logits``/``targets`` (when not None) give training accuracy as
``(logits.argmax(1) == targets).float().mean()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

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


_HEADS: dict[str, Callable[..., nn.Module]] = {}
_MARGINS: dict[str, Margin] = {}


def register_head(name: str, margin: Margin | None = None):
    """Decorator for ``builder(embedding_size, num_classes, **kwargs) -> nn.Module``.

    ``margin``: for heads that are a margin on a softmax over the classifier rows (softmax,
    CosFace, ArcFace), their default :class:`Margin` (kind, ``s``, ``m``); such heads take ``s``
    and ``m`` keyword arguments, and the method's dispersion head can apply the same margin."""

    def wrap(builder):
        if name in _HEADS:
            raise ValueError(f"head {name!r} registered twice")
        _HEADS[name] = builder
        if margin is not None:
            _MARGINS[name] = margin
        return builder

    return wrap


def default_margin(name: str) -> Margin | None:
    """The default margin of a registered margin head, None for other heads (center loss, ...)."""
    return _MARGINS.get(name)


def margin_heads() -> list[str]:
    return sorted(_MARGINS)


def create_head(name: str, embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    if name not in _HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(sorted(_HEADS))}")
    return _HEADS[name](embedding_size=embedding_size, num_classes=num_classes, **kwargs)


def list_heads() -> list[str]:
    return sorted(_HEADS)
