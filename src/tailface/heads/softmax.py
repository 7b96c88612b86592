"""Plain softmax cross-entropy over a linear classifier (no bias, as in the paper's baselines)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tailface.heads.base import HeadOutput, register_head
from tailface.heads.margins import Margin


class SoftmaxHead(nn.Module):
    def __init__(self, embedding_size: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        logits = F.linear(features, self.weight)
        return HeadOutput(F.cross_entropy(logits, labels), logits, labels)


@register_head("softmax", margin=Margin("none"))
def softmax(embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    return SoftmaxHead(embedding_size, num_classes, **kwargs)
