"""CosFace / LMCL (Wang et al. 2018): logits ``s * (cos - m on the target)``; s = 64, m = 0.35."""

from __future__ import annotations

import torch.nn as nn

from tailface.heads.base import register_head
from tailface.heads.margin_head import MarginHead
from tailface.heads.margins import Margin
from tailface.heads.sharded import ShardedMarginHead

DEFAULT = Margin("cosface", scale=64.0, value=0.35)


class CosFaceHead(MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, s: float = DEFAULT.scale, m: float = DEFAULT.value):
        super().__init__(embedding_size, num_classes, "cosface", s, m)


def sharded_cosface(embedding_size: int, num_classes: int, *, sample_rate: float = 1.0, seed: int = 0,
                    s: float = DEFAULT.scale, m: float = DEFAULT.value) -> nn.Module:
    """The class-sharded CosFace head (this rank's rows, :mod:`tailface.heads.sharded`)."""
    return ShardedMarginHead(embedding_size, num_classes, kind="cosface", s=s, m=m,
                             sample_rate=sample_rate, seed=seed)


@register_head("cosface", margin=DEFAULT, sharded=sharded_cosface)
def cosface(embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    return CosFaceHead(embedding_size, num_classes, **kwargs)
