"""LDAM loss with deferred re-weighting (Cao et al., NeurIPS 2019, "Learning Imbalanced Datasets
with Label-Distribution-Aware Margin Loss").

Margins (Cao et al. 2019, Sec. 3; their code's ``LDAMLoss``): class ``c`` with ``n_c`` training
images gets the additive cosine margin

    Delta_c = C / n_c^(1/4),   C such that max_c Delta_c = max_m   (Delta_c = max_m (min_k n_k / n_c)^(1/4))

on normalised features and rows (``cos_ic``), scale ``s``:

    z_ic = s cos_ic  (c != y_i),   z_iy = s (cos_iy - Delta_y),   l_i = -log softmax(z_i)_y

(the ``class_margin`` hook of :class:`~tailface.heads.margin_head.MarginHooks` on a CosFace-kind
margin head). Paper defaults: ``s = 30``, ``max_m = 0.5``.

Deferred re-weighting (DRW, Cao et al. 2019, Sec. 3.2 and Algorithm 1): before epoch
``drw_epoch`` the loss is the plain ``mean_i l_i``; from that epoch on (``set_epoch``, called by
the trainer with the 0-based epoch) it is the weighted mean (the ``sample_weight`` hook; torch's
weighted cross-entropy ``'mean'``)

    L = sum_i w_{y_i} l_i / sum_i w_{y_i},
    w_c = (1 - beta) / (1 - beta^n_c),  rescaled so that sum_c w_c = K (number of classes),

``w_c`` the inverse effective number of samples (Cui et al., CVPR 2019, "Class-Balanced Loss
Based on Effective Number of Samples"), ``beta = 0.9999``. The paper re-weights from epoch 160
of 200; ``drw_epoch=None`` (the default) never re-weights (plain LDAM).

``HeadOutput.logits`` are ``s cos`` without margins. Margins and weights are non-persistent
float64 buffers over all classes (they follow from the class statistics, which the checkpoint's
head spec records); the epoch is not saved either: the trainer sets it before every epoch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tailface.data.label_space import ClassStats
from tailface.heads.base import register_head
from tailface.heads.margin_head import MarginHead, MarginHooks, class_counts
from tailface.heads.sharded import ShardedMarginHead


def ldam_margins(counts: np.ndarray, max_m: float) -> np.ndarray:
    """``Delta_c = C / n_c^(1/4)`` with ``max_c Delta_c = max_m`` (float64)."""
    raw = np.asarray(counts, dtype=np.float64) ** -0.25
    return raw * (max_m / raw.max())


def effective_number_weights(counts: np.ndarray, beta: float) -> np.ndarray:
    """``w_c = (1 - beta) / (1 - beta^n_c)`` rescaled to ``sum_c w_c = K`` (float64)."""
    w = (1.0 - beta) / (1.0 - np.power(beta, np.asarray(counts, dtype=np.float64)))
    return w * (len(w) / w.sum())


class LDAMTerms(MarginHooks):
    """The hooks: ``class_margin`` ``Delta_c``; ``sample_weight`` ``w_c`` from ``drw_epoch`` on."""

    class_margins: torch.Tensor
    class_weights: torch.Tensor
    s: float  # (the margin head's scale)

    def _init_ldam(self, class_stats: ClassStats, num_classes: int, max_m: float, drw_epoch: int | None,
                   beta: float) -> None:
        counts = class_counts(class_stats, num_classes, "ldam")
        if not (math.isfinite(max_m) and max_m >= 0):
            raise ValueError(f"max_m must be a finite number >= 0, got {max_m}")
        if not 0 <= beta < 1:
            raise ValueError(f"beta must lie in [0, 1), got {beta}")
        if drw_epoch is not None and (isinstance(drw_epoch, bool) or not isinstance(drw_epoch, int) or drw_epoch < 0):
            raise ValueError(f"drw_epoch must be an epoch >= 0 or None (no re-weighting), got {drw_epoch!r}")
        self.max_m, self.drw_epoch, self.beta, self.epoch = float(max_m), drw_epoch, float(beta), 0
        self.register_buffer("class_margins", torch.from_numpy(ldam_margins(counts, max_m)), persistent=False)
        self.register_buffer("class_weights", torch.from_numpy(effective_number_weights(counts, beta)),
                             persistent=False)

    def set_epoch(self, epoch: int) -> None:
        """The 0-based epoch about to run (re-weighting from ``drw_epoch`` on)."""
        self.epoch = int(epoch)

    @property
    def reweighting(self) -> bool:
        return self.drw_epoch is not None and self.epoch >= self.drw_epoch

    def class_margin(self, classes: torch.Tensor) -> torch.Tensor:
        return self.class_margins[classes]

    def sample_weight(self, labels: torch.Tensor) -> torch.Tensor | None:
        return self.class_weights[labels] if self.reweighting else None

    def ldam_repr(self) -> str:
        return f"s={self.s}, max_m={self.max_m}, drw_epoch={self.drw_epoch}, beta={self.beta}"


class LDAMHead(LDAMTerms, MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, *, class_stats: ClassStats, s: float = 30.0,
                 max_m: float = 0.5, drw_epoch: int | None = None, beta: float = 0.9999):
        super().__init__(embedding_size, num_classes, "cosface", s, 0.0)  # (m unused: class_margin)
        self._init_ldam(class_stats, num_classes, max_m, drw_epoch, beta)

    def extra_repr(self) -> str:
        return self.ldam_repr()


class ShardedLDAMHead(LDAMTerms, ShardedMarginHead):
    def __init__(self, embedding_size: int, num_classes: int, *, class_stats: ClassStats, s: float = 30.0,
                 max_m: float = 0.5, drw_epoch: int | None = None, beta: float = 0.9999,
                 sample_rate: float = 1.0, seed: int = 0, group=None, init_std: float = 0.01):
        super().__init__(embedding_size, num_classes, kind="cosface", s=s, m=0.0, sample_rate=sample_rate,
                         seed=seed, group=group, init_std=init_std)
        self._init_ldam(class_stats, num_classes, max_m, drw_epoch, beta)

    def extra_repr(self) -> str:
        return f"{self.ldam_repr()}, rank={self.rank}/{self.world_size}, sample_rate={self.sample_rate}"


register_head("ldam", sharded=ShardedLDAMHead, needs_class_stats=True)(LDAMHead)
