"""A small CNN for CPUs (default 32x32 input): plain 3x3 conv-BN-ReLU layers, three of them
strided (total stride 8), and an embedding head BN-dropout-FC-BN.

Plain dense 3x3 convolutions train several times faster on CPU than depthwise-separable blocks of
similar accuracy (depthwise convolutions are memory-bound, especially backwards); see
``docs/benchmarks.md`` (Backbones).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tailface.errors import ConfigError
from tailface.models.common import check_embedding_size
from tailface.models.registry import register_model


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallFaceNet(nn.Module):
    def __init__(self, input_size: int = 32, embedding_size: int = 128, width: int = 16, dropout: float = 0.0):
        super().__init__()
        if int(input_size) != input_size or input_size < 8:
            raise ConfigError(f"model 'small': input_size must be an int >= 8, got {input_size}")
        side = int(input_size)
        for _ in range(3):  # each strided 3x3 conv (padding 1) maps s to ceil(s / 2)
            side = (side + 1) // 2
        embedding_size = check_embedding_size("small", embedding_size)
        w = int(width)
        self.body = nn.Sequential(
            *_conv_bn_relu(3, w),
            *_conv_bn_relu(w, 2 * w, 2), *_conv_bn_relu(2 * w, 2 * w),
            *_conv_bn_relu(2 * w, 4 * w, 2), *_conv_bn_relu(4 * w, 4 * w),
            *_conv_bn_relu(4 * w, 8 * w, 2),
        )
        self.head = nn.Sequential(
            nn.BatchNorm2d(8 * w), nn.Dropout(dropout), nn.Flatten(),
            nn.Linear(8 * w * side * side, embedding_size), nn.BatchNorm1d(embedding_size),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@register_model("small", default_input_size=32, description="small CPU network, 32x32 input")
def small(input_size: int = 32, embedding_size: int = 128, **kwargs) -> nn.Module:
    return SmallFaceNet(input_size=input_size, embedding_size=embedding_size, **kwargs)
