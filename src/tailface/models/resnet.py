"""ResNet-34 for faces (the paper's backbone): basic blocks [3, 4, 6, 3], a face stem (3x3 conv
stride 1, no max-pool) and an embedding head BN-dropout-FC-BN. Every stage halves the
resolution, so a 112x112 input ends as 512 maps of 7x7; any input that is a multiple of 16 works.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tailface.models.common import check_embedding_size, feature_side
from tailface.models.registry import register_model


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the (projected when the shape changes) input, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class FaceResNet(nn.Module):
    def __init__(self, layers=(3, 4, 6, 3), input_size: int = 112, embedding_size: int = 512,
                 dropout: float = 0.0, widths=(64, 128, 256, 512), name: str = "resnet"):
        super().__init__()
        side = feature_side(name, input_size, 16)
        embedding_size = check_embedding_size(name, embedding_size)
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.PReLU(widths[0]))
        stages, cin = [], widths[0]
        for n, cout in zip(layers, widths):
            stages.append(nn.Sequential(*[BasicBlock(cin if i == 0 else cout, cout, 2 if i == 0 else 1)
                                          for i in range(n)]))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.BatchNorm2d(cin), nn.Dropout(dropout), nn.Flatten(),
                                  nn.Linear(cin * side * side, embedding_size), nn.BatchNorm1d(embedding_size))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model("resnet34", default_input_size=112, description="ResNet-34 face variant (paper), 112x112")
def resnet34(input_size: int = 112, embedding_size: int = 512, **kwargs) -> nn.Module:
    return FaceResNet((3, 4, 6, 3), input_size, embedding_size, name="resnet34", **kwargs)
