"""A small CNN for CPUs (default 32x32 input): depthwise-separable blocks, BN-dropout-FC-BN head."""

from __future__ import annotations

import torch
import torch.nn as nn

from tailface.models.registry import register_model


def _conv_bn(cin, cout, stride=1, groups=1, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.PReLU(cout))


class SmallFaceNet(nn.Module):
    def __init__(self, input_size: int = 32, embedding_size: int = 128, width: int = 32, dropout: float = 0.0):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv_bn(3, w, 1),
            _conv_bn(w, w, 1, groups=w), _conv_bn(w, 2 * w, 1, k=1),
            _conv_bn(2 * w, 2 * w, 2, groups=2 * w), _conv_bn(2 * w, 2 * w, 1, k=1),
            _conv_bn(2 * w, 2 * w, 1, groups=2 * w), _conv_bn(2 * w, 4 * w, 1, k=1),
            _conv_bn(4 * w, 4 * w, 2, groups=4 * w), _conv_bn(4 * w, 4 * w, 1, k=1),
        )
        side = (input_size + 3) // 4
        self.head = nn.Sequential(
            nn.BatchNorm2d(4 * w), nn.Dropout(dropout), nn.Flatten(),
            nn.Linear(4 * w * side * side, embedding_size), nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@register_model("small", default_input_size=32, description="small CPU network, 32x32 input")
def small(input_size: int = 32, embedding_size: int = 128, **kwargs) -> nn.Module:
    return SmallFaceNet(input_size=input_size, embedding_size=embedding_size, **kwargs)
