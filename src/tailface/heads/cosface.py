"""CosFace / LMCL (Wang et al. 2018): logits ``s * (cos - m on the target)``; s = 64, m = 0.35."""

from __future__ import annotations

import torch.nn as nn

from tailface.heads.base import register_head
from tailface.heads.margin_head import MarginHead


class CosFaceHead(MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.35):
        super().__init__(embedding_size, num_classes, "cosface", s, m)


@register_head("cosface")
def cosface(embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    return CosFaceHead(embedding_size, num_classes, **kwargs)
