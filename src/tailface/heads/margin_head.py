"""Softmax heads with a margin on the target logit (CosFace, ArcFace), and the hooks through which
a class-count-aware loss changes them.

``MarginHead(embedding_size, num_classes, kind, s, m, easy_margin)`` computes the logits ``z``
of a batch of features ``f_i`` with labels ``y_i`` against the classifier rows ``w_c``:

- ``kind`` a margin of :mod:`tailface.heads.margins` (``none``, ``cosface``, ``arcface``, ...):
  features and rows L2-normalised, ``z = margin_logits(cos, y, kind, s, m)`` (``s cos_ic``, the
  margin at the target);
- ``kind="softmax"`` (:data:`PLAIN`): plain ``z_ic = f_i . w_c`` (no normalisation, scale or margin).

The loss is ``mean_i CE(z_i, y_i)``. The returned ``HeadOutput.logits`` are ``s * cos`` (plain:
``f . w``) *without* margin or hooks (what a test-time nearest-row decision sees), so
``accuracy()`` is the plain training accuracy. Computation runs in at least float32 (also under
autocast).

Hooks (:class:`MarginHooks`; the sharded :class:`~tailface.heads.sharded.ShardedMarginHead` calls
the same three). Each returns None by default, and the head then computes exactly what it computed
before the hooks existed, bit for bit. A class-count-aware loss overrides some of them:

- ``class_margin(classes) -> m_y`` (one per sample): the target logit becomes
  ``s * margin_fn(cos_iy, m_{y_i})`` instead of using the head's ``m``. The margin function must
  accept a tensor ``m`` elementwise: ``none`` and ``cosface`` do, ``arcface`` (``math.cos(m)``)
  does not. Not for plain logits.
- ``logit_offset(classes) -> b_c`` (one per logit column): ``z_ic + b_c``, added after the scale
  and the margin, to the loss's logits only.
- ``sample_weight(labels) -> w_i`` (one per sample): the loss becomes ``sum_i w_i l_i / sum_i w_i``
  (torch's weighted cross-entropy ``'mean'``). The replicated head normalises over the batch it is
  given (under DDP: each rank's local batch, whose gradients DDP then averages); the sharded head
  over the global batch.

The hooks get int64 global class ids on the logits' device and return a float tensor of the same
length (cast to the logits' dtype).

Both heads build the loss's logits in one method, :meth:`MarginHooks.loss_logits` (the margin
kind plus the hooks above); a loss whose target logit depends on more than the class overrides
it (AdaFace, ``heads/adaface.py``: the feature norm). A loss with other cosines overrides
``MarginHead.cosines`` / ``ShardedMarginHead.normalized_cosines`` (sub-center ArcFace,
``heads/subcenter.py``: ``weight`` is ``C x K x d``, the cosine the largest over ``K``).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tailface.data.label_space import ClassStats
from tailface.heads.base import HeadOutput
from tailface.heads.labels import checked_labels
from tailface.heads.margins import MARGINS, margin_logits, target_margin

PLAIN = "softmax"  # the kind of plain ``f . w`` logits (no normalisation, scale or margin)


def check_kind(kind: str) -> None:
    """``kind`` is :data:`PLAIN` or a registered margin kind; ValueError otherwise."""
    if kind != PLAIN and kind not in MARGINS:
        raise ValueError(f"unknown margin head kind {kind!r}; known: {PLAIN}, {', '.join(MARGINS)}")


class MarginHooks(nn.Module):
    """The overridable hooks of the margin heads (module docstring); all return None here.

    :meth:`loss_logits` is where both heads apply them; a loss whose target logit needs more than a
    per-class margin (AdaFace: the feature norm of each sample) overrides it instead."""

    kind: str
    s: float
    m: float
    easy_margin: bool

    def loss_logits(self, base: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                    features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The logits of the loss: :func:`hooked_logits` with the three hooks.

        ``base``: ``B x K`` cosines (plain logits for :data:`PLAIN`) of the batch (the sharded head:
        the global batch) against the ``K`` columns; ``targets``: ``B`` target columns (``-1``: not
        among them); ``labels``: the ``B`` global labels; ``features``: the ``B x d`` features as the
        head received them (unnormalised; the sharded head: all-gathered); ``classes``: the global
        class of each column."""
        return hooked_logits(base, targets, self.kind, self.s, self.m, self.easy_margin,
                             self.class_margin(labels), self.logit_offset(classes))

    def class_margin(self, classes: torch.Tensor) -> torch.Tensor | None:
        """Per-sample margin ``m_{y_i}`` for the target classes ``classes`` (``B``), or None: ``m``."""
        return None

    def logit_offset(self, classes: torch.Tensor) -> torch.Tensor | None:
        """Additive offset ``b_c`` of the logit columns of ``classes``, or None: no offset."""
        return None

    def sample_weight(self, labels: torch.Tensor) -> torch.Tensor | None:
        """Loss weight ``w_i`` of each sample (``B``), or None: the plain mean."""
        return None


def class_counts(class_stats: ClassStats, num_classes: int, head: str) -> np.ndarray:
    """``class_stats.counts`` for a hook, after checking that they describe ``num_classes``
    classes, each with at least one training image (ValueError naming ``head`` otherwise)."""
    if class_stats.num_classes != num_classes:
        raise ValueError(f"{head}: class_stats describe {class_stats.num_classes} classes, the head has {num_classes}")
    empty = np.flatnonzero(class_stats.counts == 0)
    if len(empty):
        raise ValueError(f"{head}: class {int(empty[0])} has no training images ({len(empty)} such classes)")
    return class_stats.counts


def hooked_logits(base: torch.Tensor, targets: torch.Tensor, kind: str, s: float, m: float,
                  easy_margin: bool = False, margin: torch.Tensor | None = None,
                  offset: torch.Tensor | None = None) -> torch.Tensor:
    """The logits of the loss from ``base`` (``B x K`` cosines, or plain logits for :data:`PLAIN`).

    ``targets``: ``B`` target columns (``-1``: the row's target is not among the columns);
    ``margin``: ``B`` per-sample margins (None: ``m``); ``offset``: ``K`` per-column offsets."""
    if kind == PLAIN:
        if margin is not None:
            raise ValueError("a per-class margin needs a margin kind (normalised logits), not plain softmax")
        logits = base
    elif margin is None:
        logits = margin_logits(base, targets, kind, s, m, easy_margin)
    else:
        rows = (targets >= 0).nonzero(as_tuple=True)[0]
        cols = targets[rows]
        # the margin function is applied elementwise to a tensor m (see the module docstring)
        m_rows = cast(float, margin.to(base)[rows])
        logits = base.index_put((rows, cols), target_margin(base[rows, cols], kind, m_rows, easy_margin)) * s
    if offset is not None:
        logits = logits + offset.to(logits)
    return logits


class MarginHead(MarginHooks):
    def __init__(self, embedding_size: int, num_classes: int, kind: str, s: float, m: float,
                 easy_margin: bool = False):
        super().__init__()
        check_kind(kind)
        if s <= 0:
            raise ValueError(f"scale s must be positive, got {s}")
        self.kind, self.s, self.m, self.easy_margin = kind, float(s), float(m), bool(easy_margin)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, s={self.s}, m={self.m}, easy_margin={self.easy_margin}"

    def cosines(self, features: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            return F.linear(F.normalize(features.to(dtype), dim=1), F.normalize(self.weight.to(dtype), dim=1))

    def plain_logits(self, features: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            return F.linear(features.to(dtype), self.weight.to(dtype))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        labels = checked_labels(labels, self.weight.shape[0], features.shape[0])
        plain = self.kind == PLAIN
        base = self.plain_logits(features) if plain else self.cosines(features)
        classes = torch.arange(self.weight.shape[0], device=labels.device)
        logits = self.loss_logits(base, labels, labels, features, classes)
        weight = self.sample_weight(labels)
        if weight is None:
            loss = F.cross_entropy(logits, labels)
        else:
            weight = weight.to(logits)
            loss = (weight * F.cross_entropy(logits, labels, reduction="none")).sum() / weight.sum()
        return HeadOutput(loss, (base if plain else base * self.s).detach(), labels)
