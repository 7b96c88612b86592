"""Margins on the target logit of a cosine matrix: softmax (none), CosFace and ArcFace.

``margin_logits(cos, targets, kind, s, m)`` is the one entry point; every margin head (and the
dispersion head of the method) builds its logits with it. The kinds are a registry
(:func:`register_margin`); a new margin is one function (docs/architecture.md, "Adding a margin head").

- ``"none"``: ``s * cos``.
- ``"cosface"`` (LMCL, Wang et al. 2018): target ``s * (cos - m)``.
- ``"arcface"`` (Deng et al. 2019): target ``s * cos(theta + m)`` computed as
  ``cos * cos(m) - sin(theta) * sin(m)`` with ``sin(theta) = sqrt(clamp(1 - cos^2, eps))``
  (``eps`` = the smallest normal number of the dtype), so the gradient stays finite at
  ``cos = +-1`` (where the clamp zeroes the sine's gradient) while values are exact to rounding.
  Once ``theta + m`` passes pi (``cos <= cos(pi - m)``), ``cos(theta + m)`` would increase again
  with theta; the target logit is then the CosFace-like ``cos - m * sin(m)``
  (``mm = sin(pi - m) * m``, InsightFace's choice): monotonic in ``cos``, with a downward step of
  about ``m^2 / 2`` at the switch (from -1 to ``-cos(m) - m sin(m)``).
  ``easy_margin=True`` instead applies the margin only where ``cos > 0`` (``cos`` itself
  elsewhere). Gradients flow through the margin (no ``torch.no_grad`` around it, unlike
  InsightFace's arcface_torch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Margin:
    """What a margin head applies to the target logit: the margin ``kind`` (a registered name),
    the ``scale`` s of the cosines and the margin ``value`` m. ``kind="none"`` with scale 1 is the
    plain (unnormalised) softmax."""

    kind: str = "none"
    scale: float = 1.0
    value: float = 0.0
    easy_margin: bool = False

    def __post_init__(self) -> None:
        check_margin(self.kind)
        if self.kind != "none" and not self.scale > 0:
            raise ValueError(f"margin scale s must be positive, got {self.scale}")

    @property
    def normalized(self) -> bool:
        """Cosine logits (features and rows L2-normalised), as every kind but ``none`` uses."""
        return self.kind != "none"


MarginFn = Callable[[torch.Tensor, float, bool], torch.Tensor]
MARGINS: dict[str, MarginFn] = {}


def register_margin(kind: str):
    """Decorator for ``fn(cos, m, easy_margin) -> target cosines``: a new margin kind for
    :func:`target_margin`, :func:`margin_logits` and every head built on them."""

    def wrap(fn: MarginFn) -> MarginFn:
        if kind in MARGINS:
            raise ValueError(f"margin {kind!r} registered twice")
        MARGINS[kind] = fn
        return fn

    return wrap


@register_margin("none")
def _no_margin(cos: torch.Tensor, m: float, easy_margin: bool) -> torch.Tensor:
    return cos


@register_margin("cosface")
def _cosface(cos: torch.Tensor, m: float, easy_margin: bool) -> torch.Tensor:
    return cos - m


@register_margin("arcface")
def _arcface(cos: torch.Tensor, m: float, easy_margin: bool) -> torch.Tensor:
    sin = torch.sqrt((1.0 - cos * cos).clamp_min(torch.finfo(cos.dtype).tiny))
    shifted = cos * math.cos(m) - sin * math.sin(m)
    if easy_margin:
        return torch.where(cos > 0, shifted, cos)
    return torch.where(cos > math.cos(math.pi - m), shifted, cos - math.sin(math.pi - m) * m)


def check_margin(kind: str) -> None:
    if kind not in MARGINS:
        raise ValueError(f"unknown margin {kind!r}; known: {', '.join(MARGINS)}")


def target_margin(cos: torch.Tensor, kind: str, m: float, easy_margin: bool = False) -> torch.Tensor:
    """The target cosines after the margin (unscaled), elementwise on any shape."""
    check_margin(kind)
    return MARGINS[kind](cos, m, easy_margin)


def margin_logits(cos: torch.Tensor, targets: torch.Tensor, kind: str = "arcface", s: float = 64.0,
                  m: float = 0.5, easy_margin: bool = False) -> torch.Tensor:
    """``s * cos`` with the margin ``kind`` applied at the target positions only.

    ``cos``: ``B x C`` cosines (normalised features against normalised rows).
    ``targets``: either a ``B`` int64 tensor of target columns (one per row; a negative entry
    means "no target in this row") or a ``B x C`` bool mask, True at the target positions (any
    number per row). Returns a new ``B x C`` tensor; gradients flow through the margin.
    """
    if cos.dim() != 2:
        raise ValueError(f"cos must be a B x C matrix, got shape {tuple(cos.shape)}")
    if targets.dtype == torch.bool:
        if targets.shape != cos.shape:
            raise ValueError(f"target mask shape {tuple(targets.shape)} differs from cos {tuple(cos.shape)}")
        rows, cols = targets.nonzero(as_tuple=True)
    else:
        if targets.shape != cos.shape[:1]:
            raise ValueError(f"targets must hold one column per row ({cos.shape[0]}), got shape "
                             f"{tuple(targets.shape)}")
        targets = targets.long()
        rows = (targets >= 0).nonzero(as_tuple=True)[0]
        cols = targets[rows]
        if cols.numel() and cols.max() >= cos.shape[1]:
            raise ValueError(f"target column {int(cols.max())} out of range for {cos.shape[1]} columns")
    check_margin(kind)
    if kind != "none":
        cos = cos.index_put((rows, cols), target_margin(cos[rows, cols], kind, m, easy_margin))
    return cos * s
