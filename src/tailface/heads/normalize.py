"""``normalize_rows``: classifier rows scaled to unit L2 norm, with a light backward.

Same values as ``F.normalize(w, dim=1)``; the backward ``(g - y (g . y)) / ||w||`` takes three
passes over the ``N x d`` classifier instead of autograd's ten or so. The margin heads of the
method and the sharded heads use it.
"""

from __future__ import annotations

import torch


class _NormalizeRows(torch.autograd.Function):
    """``w / ||w||`` per row with a three-pass backward ``(g - y (g . y)) / ||w||`` (autograd's
    division backward makes about ten passes over the ``N x d`` classifier)."""

    @staticmethod
    def forward(ctx, w, eps):
        inv = w.norm(dim=1, keepdim=True).clamp_min(eps).reciprocal_()
        y = w * inv
        ctx.save_for_backward(y, inv)
        return y

    @staticmethod
    def backward(ctx, g):
        y, inv = ctx.saved_tensors
        dot = torch.linalg.vecdot(g, y, dim=1).unsqueeze(1)
        return torch.addcmul(g, y, dot, value=-1.0).mul_(inv), None


def normalize_rows(w: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of ``w`` scaled to unit L2 norm (same values as ``F.normalize(w, dim=1)``)."""
    return _NormalizeRows.apply(w, eps)
