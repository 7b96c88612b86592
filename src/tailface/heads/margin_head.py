"""Normalised softmax heads with a margin on the target logit (CosFace, ArcFace).

Features and classifier rows are L2-normalised; the loss is the cross-entropy of
``margin_logits(cos, labels, kind, s, m)``. The returned ``HeadOutput.logits`` are ``s * cos``
*without* the margin (what a test-time nearest-row decision sees), so ``accuracy()`` is the
plain training accuracy. Computation runs in at least float32 (also under autocast).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tailface.heads.base import HeadOutput
from tailface.heads.labels import checked_labels
from tailface.heads.margins import check_margin, margin_logits


class MarginHead(nn.Module):
    def __init__(self, embedding_size: int, num_classes: int, kind: str, s: float, m: float,
                 easy_margin: bool = False):
        super().__init__()
        check_margin(kind)
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

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        labels = checked_labels(labels, self.weight.shape[0], features.shape[0])
        cos = self.cosines(features)
        logits = margin_logits(cos, labels, self.kind, self.s, self.m, self.easy_margin)
        return HeadOutput(F.cross_entropy(logits, labels), (cos * self.s).detach(), labels)
