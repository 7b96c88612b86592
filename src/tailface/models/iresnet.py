"""Improved ResNets in the InsightFace ``arcface_torch`` layout, so its published backbone state
dicts load with ``load_state_dict(strict=True)``.

Module names follow that layout: stem ``conv1``/``bn1``/``prelu``; ``layer1``..``layer4`` of
``IBasicBlock`` (``bn1``-``conv1``-``bn2``-``prelu``-``conv2``(strided)-``bn3``, plus
``downsample`` = 1x1 conv + BN on the first block of each stage); then ``bn2``, ``dropout``,
``fc`` and the ``features`` BatchNorm1d (its scale fixed at 1, not trained). Input 112x112 gives
7x7 maps before ``fc``; any multiple of 16 works.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from tailface.errors import DataError
from tailface.models.common import check_embedding_size, feature_side
from tailface.models.registry import register_model


class IBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    layer1: nn.Sequential  # set with setattr in __init__
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, layers, input_size: int = 112, embedding_size: int = 512, dropout: float = 0.0,
                 name: str = "iresnet"):
        super().__init__()
        side = feature_side(name, input_size, 16)
        embedding_size = check_embedding_size(name, embedding_size)
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU(64)
        cin = 64
        for i, (n, cout) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
            blocks = [IBasicBlock(cin if j == 0 else cout, cout, 2 if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = cout
        self.bn2 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * side * side, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


@register_model("iresnet50", default_input_size=112, description="InsightFace IResNet-50, 112x112")
def iresnet50(input_size: int = 112, embedding_size: int = 512, **kwargs) -> nn.Module:
    return IResNet((3, 4, 14, 3), input_size, embedding_size, name="iresnet50", **kwargs)


@register_model("iresnet100", default_input_size=112, description="InsightFace IResNet-100, 112x112")
def iresnet100(input_size: int = 112, embedding_size: int = 512, **kwargs) -> nn.Module:
    return IResNet((3, 13, 30, 3), input_size, embedding_size, name="iresnet100", **kwargs)


def load_insightface_backbone(model: nn.Module, path) -> nn.Module:
    """Load an InsightFace ``backbone.pth`` (a plain state dict; a ``module.`` prefix from
    DistributedDataParallel is removed) into ``model`` strictly. Raises
    :class:`~tailface.errors.DataError` naming the file and the missing, unexpected or misshapen
    keys when they do not match."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: backbone weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a data error
        raise DataError(f"{path}: cannot read backbone weights ({type(e).__name__}: {e})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshapen = [f"{k} {tuple(state[k].shape)} (model {tuple(v.shape)})"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
        raise DataError(f"{path}: weights do not match {type(model).__name__} "
                        f"({sum(p.numel() for p in model.parameters())} parameters); " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model
