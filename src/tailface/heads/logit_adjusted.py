"""Logit-adjusted softmax (Menon et al., ICLR 2021, "Long-tail learning via logit adjustment").

The logit-adjusted loss adds ``tau`` times the log class prior of the training set to every
logit during training:

    l(z_i, y_i) = -log [ exp(z_iy + tau log pi_y) / sum_c exp(z_ic + tau log pi_c) ],
    pi_c = n_c / sum_k n_k                         (ClassStats.prior(), n_c images of class c)

and the loss is ``mean_i l(z_i, y_i)``. ``tau = 1`` (the default) is Balanced Softmax (Ren et
al., NeurIPS 2020, "Balanced Meta-Softmax for Long-Tailed Visual Recognition": ``+ log n_c``,
which differs from ``+ log pi_c`` by a constant that cancels); ``tau = 0`` is the plain loss.

``z`` is chosen by ``margin``: ``none`` (default) the plain softmax logits ``z_ic = f_i . w_c``
(no normalisation, as the ``softmax`` head); a margin kind of :mod:`tailface.heads.margins`
(``cosface``, ``arcface``, ...) the normalised ``s cos`` logits with that margin on the target,
``s`` and ``m`` defaulting to those of the head of the same name (CosFace 64 / 0.35, ArcFace
64 / 0.5). The offset is the :class:`~tailface.heads.margin_head.MarginHooks` ``logit_offset``
hook, added after the scale and the margin. It enters the loss only: ``HeadOutput.logits`` are
the *unadjusted* ``f . w`` (or ``s cos``, no margin), the balanced-prior decision of the paper.

Every class needs at least one training image (``log pi_c`` finite). Both the replicated
(:class:`LogitAdjustedHead`) and the class-sharded (:class:`ShardedLogitAdjustedHead`) head
exist; the offset is a non-persistent buffer (it follows from the class statistics, which the
checkpoint's head spec records).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tailface.data.label_space import ClassStats
from tailface.heads.base import default_margin, register_head
from tailface.heads.margin_head import PLAIN, MarginHead, MarginHooks, class_counts
from tailface.heads.margins import check_margin
from tailface.heads.sharded import ShardedMarginHead


def logit_kind(margin: str, s: float | None, m: float | None, easy_margin: bool) -> tuple[str, float, float, bool]:
    """``(kind, s, m, easy_margin)`` of the margin head computing ``z`` for ``margin``."""
    if margin == "none":
        if s is not None or m is not None or easy_margin:
            raise ValueError("s, m and easy_margin apply only with a margin (margin: cosface, arcface, ...)")
        return PLAIN, 1.0, 0.0, False
    check_margin(margin)
    default = default_margin(margin)
    if default is None or default.kind != margin:
        if s is None or m is None:
            raise ValueError(f"margin {margin!r}: give s and m (no head of that name supplies defaults)")
        return margin, float(s), float(m), bool(easy_margin)
    return (margin, float(default.scale if s is None else s), float(default.value if m is None else m),
            bool(easy_margin))


class LogitAdjustment(MarginHooks):
    """The ``logit_offset`` hook ``tau log pi_c`` (buffer ``adjustment``, float64, all classes)."""

    adjustment: torch.Tensor

    def _init_adjustment(self, class_stats: ClassStats, num_classes: int, tau: float) -> None:
        tau = float(tau)
        if not (math.isfinite(tau) and tau >= 0):
            raise ValueError(f"tau must be a finite number >= 0, got {tau}")
        class_counts(class_stats, num_classes, "logit_adjusted")
        self.tau = tau
        self.register_buffer("adjustment", torch.from_numpy(tau * np.log(class_stats.prior())), persistent=False)

    def logit_offset(self, classes: torch.Tensor) -> torch.Tensor:
        return self.adjustment[classes]


class LogitAdjustedHead(LogitAdjustment, MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, *, class_stats: ClassStats, tau: float = 1.0,
                 margin: str = "none", s: float | None = None, m: float | None = None, easy_margin: bool = False):
        super().__init__(embedding_size, num_classes, *logit_kind(margin, s, m, easy_margin))
        self._init_adjustment(class_stats, num_classes, tau)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, {super().extra_repr()}"


class ShardedLogitAdjustedHead(LogitAdjustment, ShardedMarginHead):
    def __init__(self, embedding_size: int, num_classes: int, *, class_stats: ClassStats, tau: float = 1.0,
                 margin: str = "none", s: float | None = None, m: float | None = None, easy_margin: bool = False,
                 sample_rate: float = 1.0, seed: int = 0, group=None, init_std: float = 0.01):
        kind, s_, m_, easy = logit_kind(margin, s, m, easy_margin)
        super().__init__(embedding_size, num_classes, kind=kind, s=s_, m=m_, easy_margin=easy,
                         sample_rate=sample_rate, seed=seed, group=group, init_std=init_std)
        self._init_adjustment(class_stats, num_classes, tau)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, {super().extra_repr()}"


register_head("logit_adjusted", sharded=ShardedLogitAdjustedHead, needs_class_stats=True)(LogitAdjustedHead)
