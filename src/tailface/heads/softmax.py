"""Plain softmax cross-entropy over a linear classifier (no bias, as in the paper's baselines)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tailface.heads.base import HeadOutput, register_head
from tailface.heads.margins import Margin
from tailface.heads.sharded import ShardedMarginHead

DEFAULT = Margin("none")


class SoftmaxHead(nn.Module):
    def __init__(self, embedding_size: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        logits = F.linear(features, self.weight)
        return HeadOutput(F.cross_entropy(logits, labels), logits, labels)


def sharded_softmax(embedding_size: int, num_classes: int, *, sample_rate: float = 1.0,
                    seed: int = 0) -> nn.Module:
    """The class-sharded softmax head (this rank's rows, :mod:`tailface.heads.sharded`)."""
    return ShardedMarginHead(embedding_size, num_classes, kind="softmax", s=DEFAULT.scale, m=DEFAULT.value,
                             sample_rate=sample_rate, seed=seed)


@register_head("softmax", margin=DEFAULT, sharded=sharded_softmax)
def softmax(embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    return SoftmaxHead(embedding_size, num_classes, **kwargs)
