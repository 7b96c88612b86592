"""Sub-center ArcFace (Deng et al., ECCV 2020, "Sub-center ArcFace: Boosting Face Recognition by
Large-scale Noisy Web Faces").

Each class ``c`` has ``K`` sub-centres ``w_c1 .. w_cK`` (``head.weight``: ``C x K x d``, so
``weight.shape[0]`` is still the number of classes). A sample's cosine to a class is that of the
closest sub-centre, and the margin applies to it as in the plain margin heads:

    cos_ic = max_k  f_i . w_ck / (||f_i|| ||w_ck||)
    z_ic = s cos_ic  (c != y_i),   z_iy = s margin(cos_iy),   loss = mean_i -log softmax(z_i)_y

``margin`` is a kind of :mod:`tailface.heads.margins`: ``arcface`` (default, ``cos(theta + m)``
with ArcFace's ``theta + m > pi`` fallback) or ``cosface`` (``cos - m``); ``s`` and ``m`` default
to those of the head of that name (ArcFace 64 / 0.5, the paper's; CosFace 64 / 0.35). ``K = 3``
is the paper's default. The gradient of the max reaches only the closest sub-centre of each
(sample, class) pair (``amax``: shared equally between exact ties). ``HeadOutput.logits`` are
``s cos_ic`` without margin.

The paper's second step (drop the samples far from their class's dominant sub-centre, then
retrain) starts from :func:`dominant_subcentres`; the drop and retraining are not here.

Both the replicated (:class:`SubCenterHead`) and the class-sharded
(:class:`ShardedSubCenterHead`, a class's ``K`` sub-centres always on one rank, world-size
independent initial rows) head exist; they differ from the margin heads only in the cosines.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tailface.heads.base import default_margin, register_head
from tailface.heads.margin_head import MarginHead, MarginHooks
from tailface.heads.margins import check_margin
from tailface.heads.normalize import normalize_rows
from tailface.heads.sharded import ShardedMarginHead, init_rows

DEFAULT_K = 3


def margin_settings(margin: str, s: float | None, m: float | None) -> tuple[str, float, float]:
    """``(kind, s, m)``: ``s`` / ``m`` default to those of the head named ``margin``."""
    check_margin(margin)
    if margin == "none":
        raise ValueError("sub-center ArcFace needs a margin kind (arcface, cosface, ...), not 'none'")
    default = default_margin(margin)
    if default is None or default.kind != margin:
        if s is None or m is None:
            raise ValueError(f"margin {margin!r}: give s and m (no head of that name supplies defaults)")
        return margin, float(s), float(m)
    return margin, float(default.scale if s is None else s), float(default.value if m is None else m)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (sub-centres per class) must be an int >= 1, got {k!r}")
    return k


def subcentre_cosines(f_unit: torch.Tensor, w_unit: torch.Tensor) -> torch.Tensor:
    """``B x C`` cosines ``max_k f_i . w_ck`` of unit features ``f_unit`` (``B x d``) and unit
    sub-centres ``w_unit`` (``C x K x d``)."""
    c, k, d = w_unit.shape
    return F.linear(f_unit, w_unit.reshape(c * k, d)).view(f_unit.shape[0], c, k).amax(dim=2)


class SubCentres(MarginHooks):
    """What the sub-centre heads share: ``k`` and their repr."""

    k: int

    def subcenter_repr(self) -> str:
        return f"k={self.k}, margin={self.kind}, s={self.s}, m={self.m}, easy_margin={self.easy_margin}"


class SubCenterHead(SubCentres, MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, k: int = DEFAULT_K, margin: str = "arcface",
                 s: float | None = None, m: float | None = None, easy_margin: bool = False):
        super().__init__(embedding_size, num_classes, *margin_settings(margin, s, m), easy_margin)
        self.k = check_k(k)
        self.weight = nn.Parameter(torch.empty(num_classes, self.k, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def extra_repr(self) -> str:
        return self.subcenter_repr()

    def cosines(self, features: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            return subcentre_cosines(F.normalize(features.to(dtype), dim=1),
                                     F.normalize(self.weight.to(dtype), dim=2))


class ShardedSubCenterHead(SubCentres, ShardedMarginHead):
    """The class-sharded head: rank ``r`` holds the ``K`` sub-centres of its classes
    (``rows x K x d``); sub-centre ``k`` of class ``c`` starts as entry ``k`` of the ``K d``-long row
    :func:`~tailface.heads.sharded.init_rows` draws for ``c`` (independent of the world size)."""

    def __init__(self, embedding_size: int, num_classes: int, k: int = DEFAULT_K, margin: str = "arcface",
                 s: float | None = None, m: float | None = None, easy_margin: bool = False,
                 sample_rate: float = 1.0, seed: int = 0, group=None, init_std: float = 0.01):
        kind, s_, m_ = margin_settings(margin, s, m)
        super().__init__(embedding_size, num_classes, kind=kind, s=s_, m=m_, easy_margin=easy_margin,
                         sample_rate=sample_rate, seed=seed, group=group, init_std=init_std)
        self.k = check_k(k)
        classes = self.plan.classes(self.rank)
        rows = init_rows(classes, self.k * embedding_size, self.seed, init_std)
        self.weight = nn.Parameter(rows.view(len(classes), self.k, embedding_size))

    def extra_repr(self) -> str:
        return f"{self.subcenter_repr()}, rank={self.rank}/{self.world_size}, sample_rate={self.sample_rate}"

    def normalized_cosines(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        rows, k, d = w.shape
        return subcentre_cosines(F.normalize(f, dim=1), normalize_rows(w.reshape(rows * k, d)).view(rows, k, d))


register_head("subcenter_arcface", sharded=ShardedSubCenterHead)(SubCenterHead)


# the drop step's measure -------------------------------------------------------------------------
class DominantSubcentres(NamedTuple):
    """``dominant``: the dominant sub-centre of each class (``C``, int64; ``-1`` for a class
    without samples); ``angle``: each sample's angle to its class's dominant sub-centre, degrees
    (``B``, float64)."""

    dominant: torch.Tensor
    angle: torch.Tensor


def dominant_subcentres(weight: torch.Tensor, features: torch.Tensor, labels: torch.Tensor,
                        chunk: int = 8192) -> DominantSubcentres:
    """Each sample picks the closest sub-centre of its own class (``argmax_k cos(f_i, w_{y_i k})``);
    a class's dominant sub-centre is the one most of its samples pick (ties: the lowest index); the
    result gives it and every sample's angle ``acos(cos(f_i, w_{y_i, dominant}))`` in degrees, the
    measure by which the paper drops samples (75 degrees in Deng et al. 2020).

    ``weight``: ``C x K x d`` sub-centres (a sub-center head's ``weight``, or a checkpoint's
    ``head["weight"]``); ``features``: ``B x d`` (any norm); ``labels``: ``B`` classes. Computed in
    float64 without gradients, ``chunk`` samples at a time."""
    if weight.dim() != 3:
        raise ValueError(f"weight must be C x K x d sub-centres, got shape {tuple(weight.shape)}")
    num_classes, k, d = weight.shape
    if features.dim() != 2 or features.shape[1] != d or labels.shape != features.shape[:1]:
        raise ValueError(f"expected B x {d} features and B labels, got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)}")
    labels = labels.long().cpu()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    with torch.no_grad():
        w = F.normalize(weight.detach().double().cpu(), dim=2)
        cos = torch.empty(len(labels), k, dtype=torch.float64)
        for start in range(0, len(labels), chunk):
            f = F.normalize(features[start:start + chunk].detach().double().cpu(), dim=1)
            cos[start:start + len(f)] = torch.einsum("bkd,bd->bk", w[labels[start:start + chunk]], f)
        picks = np.zeros((num_classes, k), dtype=np.int64)
        np.add.at(picks, (labels.numpy(), cos.argmax(1).numpy()), 1)
        dominant = torch.from_numpy(np.where(picks.sum(1) > 0, picks.argmax(1), -1))
        own = cos.gather(1, dominant[labels][:, None]).squeeze(1) if len(labels) else cos.new_zeros(0)
        angle = torch.rad2deg(torch.acos(own.clamp(-1.0, 1.0)))
    return DominantSubcentres(dominant, angle)

