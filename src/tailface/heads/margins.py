"""Margins on the target logit of a cosine matrix: softmax (none), CosFace and ArcFace.

``margin_logits(cos, targets, kind, s, m)`` is the one entry point; every margin head (and the
dispersion head of the method) builds its logits with it.

- ``"none"``: ``s * cos``.
- ``"cosface"`` (LMCL, Wang et al. 2018): target ``s * (cos - m)``.
- ``"arcface"`` (Deng et al. 2019): target ``s * cos(theta + m)`` computed as
  ``cos * cos(m) - sin(theta) * sin(m)`` with ``sin(theta) = sqrt(clamp(1 - cos^2, eps))``
  (``eps`` = the smallest normal number of the dtype), so the gradient stays finite at
  ``cos = +-1`` (where the clamp zeroes the sine's gradient) while values are exact to rounding. Once ``theta + m`` passes pi (``cos <= cos(pi - m)``),
  ``cos(theta + m)`` would increase again with theta; the target logit is then the CosFace-like
  ``cos - m * sin(m)`` (``mm = sin(pi - m) * m``, InsightFace's choice): monotonic in ``cos``, with
  a downward step of about ``m^2 / 2`` at the switch (from -1 to ``-cos(m) - m sin(m)``). ``easy_margin=True`` instead applies the margin only where ``cos > 0`` (``cos``
  itself elsewhere). Gradients flow through the margin (no ``torch.no_grad`` around it, unlike
  InsightFace's arcface_torch).
"""

from __future__ import annotations

import math

import torch

MARGINS = ("none", "cosface", "arcface")


def target_margin(cos: torch.Tensor, kind: str, m: float, easy_margin: bool = False) -> torch.Tensor:
    """The target cosines after the margin (unscaled), elementwise on any shape."""
    if kind == "none":
        return cos
    if kind == "cosface":
        return cos - m
    if kind == "arcface":
        sin = torch.sqrt((1.0 - cos * cos).clamp_min(torch.finfo(cos.dtype).tiny))
        shifted = cos * math.cos(m) - sin * math.sin(m)
        if easy_margin:
            return torch.where(cos > 0, shifted, cos)
        return torch.where(cos > math.cos(math.pi - m), shifted, cos - math.sin(math.pi - m) * m)
    raise ValueError(f"unknown margin {kind!r}; known: {', '.join(MARGINS)}")


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
    if kind not in MARGINS:
        raise ValueError(f"unknown margin {kind!r}; known: {', '.join(MARGINS)}")
    if kind != "none":
        cos = cos.index_put((rows, cols), target_margin(cos[rows, cols], kind, m, easy_margin))
    return cos * s
