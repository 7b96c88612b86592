"""Softmax + lambda * range loss (Zhang et al., ICCV 2017, "Range loss for deep face recognition
with long-tailed training data").

``L = CE(W x, y) + lam * (alpha * L_intra + beta * L_inter)``, computed on the batch:

- distances are *squared* Euclidean distances between raw (unnormalised) features, as in the
  paper (``D = ||x_a - x_b||_2^2``);
- ``L_intra = sum over the classes of the batch`` (a sum, as in the paper) of the harmonic mean of
  the class's ``k`` largest pairwise distances, ``k' / sum_j 1/D_j``. A class with fewer than
  ``k`` pairs uses all its pairs (``k'`` = their number); a class with one image in the batch
  contributes nothing. Distances are floored at ``1e-12`` inside ``1/D`` (duplicated images give
  a zero distance);
- ``L_inter = max(margin - D_center, 0)`` with ``D_center`` the smallest squared distance between
  two class centres of the batch (centre = mean feature of the class's images in the batch; the
  gradient flows through it); zero when the batch holds fewer than two classes.

Defaults: ``k = 2``, ``alpha = beta = 1`` (the paper's weighting of the two terms is folded into
``lam``), ``lam = 1e-3`` and ``margin = 2 * embedding_size`` — the expected squared distance
between two independent features of unit variance per dimension (the backbones end in a
BatchNorm), i.e. class centres are pushed at least as far apart as two random features. These
values are ours, not the paper's. The loss needs batches with several images of several
identities: use the ``pk`` sampler (``tailface.data.samplers.PKSampler``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tailface.heads.base import HeadOutput, register_head
from tailface.heads.labels import checked_labels

DIST_FLOOR = 1e-12


def range_intra(features: torch.Tensor, labels: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Sum over the classes of the batch of the harmonic mean of their ``k`` largest pairwise
    squared distances."""
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
    same = labels[i] == labels[j]
    i, j = i[same], j[same]
    if i.numel() == 0:
        return features.sum() * 0.0
    d = (features[i] - features[j]).pow(2).sum(1)
    cls = labels[i]
    # the k largest distances of each class: sort by distance (descending), then stably by class
    order = torch.argsort(d.detach(), descending=True, stable=True)
    order = order[torch.argsort(cls[order], stable=True)]
    cls_sorted = cls[order]
    _, counts = torch.unique_consecutive(cls_sorted, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    keep = order[(torch.arange(len(order), device=d.device) - starts) < k]
    _, group = torch.unique(cls[keep], return_inverse=True)
    num = torch.bincount(group).to(d.dtype)
    inv_sum = torch.zeros_like(num).index_add(0, group, 1.0 / d[keep].clamp_min(DIST_FLOOR))
    return (num / inv_sum).sum()


def range_inter(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """``max(margin - D_center, 0)``, ``D_center`` the smallest squared distance between two class
    centres of the batch."""
    classes, group = torch.unique(labels, return_inverse=True)
    if len(classes) < 2:
        return features.sum() * 0.0
    sums = features.new_zeros(len(classes), features.shape[1]).index_add(0, group, features)
    centres = sums / torch.bincount(group).to(features.dtype)[:, None]
    i, j = torch.triu_indices(len(classes), len(classes), offset=1, device=labels.device)
    d_center = (centres[i] - centres[j]).pow(2).sum(1).min()
    return F.relu(margin - d_center)


def range_loss(features: torch.Tensor, labels: torch.Tensor, k: int = 2, margin: float = 1.0,
               alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """``alpha * L_intra + beta * L_inter`` of one batch."""
    return alpha * range_intra(features, labels, k) + beta * range_inter(features, labels, margin)


class RangeLossHead(nn.Module):
    def __init__(self, embedding_size: int, num_classes: int, lam: float = 1e-3, k: int = 2,
                 margin: float | None = None, alpha: float = 1.0, beta: float = 1.0):
        super().__init__()
        if k < 1 or lam < 0:
            raise ValueError(f"range loss needs k >= 1 and lam >= 0, got k={k}, lam={lam}")
        self.lam, self.k, self.alpha, self.beta = float(lam), int(k), float(alpha), float(beta)
        self.margin = float(2 * embedding_size if margin is None else margin)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, k={self.k}, margin={self.margin}, alpha={self.alpha}, beta={self.beta}"

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        labels = checked_labels(labels, self.weight.shape[0], features.shape[0])
        logits = F.linear(features, self.weight.to(features.dtype))
        dtype = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            extra = range_loss(features.to(dtype), labels, self.k, self.margin, self.alpha, self.beta)
        return HeadOutput(F.cross_entropy(logits, labels) + self.lam * extra, logits, labels)


@register_head("range_loss")
def range_loss_head(embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    return RangeLossHead(embedding_size, num_classes, **kwargs)
