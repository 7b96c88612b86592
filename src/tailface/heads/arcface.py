"""ArcFace (Deng et al. 2019): target logit ``s * cos(theta + m)``; s = 64, m = 0.5.

The margin is differentiated (see ``margins.py`` for the ``theta + m > pi`` fallback and the
``easy_margin`` option).
"""

from __future__ import annotations

import torch.nn as nn

from tailface.heads.base import register_head
from tailface.heads.margin_head import MarginHead
from tailface.heads.margins import Margin
from tailface.heads.sharded import ShardedMarginHead

DEFAULT = Margin("arcface", scale=64.0, value=0.5)


class ArcFaceHead(MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, s: float = DEFAULT.scale, m: float = DEFAULT.value,
                 easy_margin: bool = False):
        super().__init__(embedding_size, num_classes, "arcface", s, m, easy_margin)


def sharded_arcface(embedding_size: int, num_classes: int, *, sample_rate: float = 1.0, seed: int = 0,
                    s: float = DEFAULT.scale, m: float = DEFAULT.value,
                    easy_margin: bool = DEFAULT.easy_margin) -> nn.Module:
    """The class-sharded ArcFace head (this rank's rows, :mod:`tailface.heads.sharded`)."""
    return ShardedMarginHead(embedding_size, num_classes, kind="arcface", s=s, m=m, easy_margin=easy_margin,
                             sample_rate=sample_rate, seed=seed)


@register_head("arcface", margin=DEFAULT, sharded=sharded_arcface)
def arcface(embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    return ArcFaceHead(embedding_size, num_classes, **kwargs)
