"""MobileFaceNet (Chen et al., 2018): inverted-residual depthwise-separable bottlenecks, a global
depthwise convolution (GDConv) instead of global pooling, and a linear 1x1 conv to the embedding
(128-d in the paper, any size here). 112x112 input ends as 512 maps of 7x7; any multiple of 16
works (the GDConv kernel is input_size / 16).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tailface.models.common import check_embedding_size, feature_side
from tailface.models.registry import register_model

# (expansion t, output channels c, repeats n, first stride s), Table 1 of the paper
BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """1x1 expand - 3x3 depthwise (strided) - linear 1x1 project; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(conv_bn(cin, hidden), conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  conv_bn(hidden, cout, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileFaceNet(nn.Module):
    def __init__(self, input_size: int = 112, embedding_size: int = 128, name: str = "mobilefacenet"):
        super().__init__()
        side = feature_side(name, input_size, 16)
        embedding_size = check_embedding_size(name, embedding_size)
        layers: list[nn.Module] = [conv_bn(3, 64, 3, 2), conv_bn(64, 64, 3, 1, groups=64)]
        cin = 64
        for t, c, n, s in BOTTLENECKS:
            for i in range(n):
                layers.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 512))
        self.body = nn.Sequential(*layers)
        self.gdconv = conv_bn(512, 512, side, 1, groups=512, act=False)
        gdconv = self.gdconv[0]
        assert isinstance(gdconv, nn.Conv2d)
        gdconv.padding = (0, 0)
        self.embedding = nn.Sequential(nn.Conv2d(512, embedding_size, 1, bias=False), nn.Flatten(),
                                       nn.BatchNorm1d(embedding_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.gdconv(self.body(x)))


@register_model("mobilefacenet", default_input_size=112, description="MobileFaceNet (Chen et al. 2018), 112x112")
def mobilefacenet(input_size: int = 112, embedding_size: int = 512, **kwargs) -> nn.Module:
    return MobileFaceNet(input_size, embedding_size, name="mobilefacenet", **kwargs)
