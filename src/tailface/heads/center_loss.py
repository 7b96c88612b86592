"""Softmax + lambda * center loss (Wen et al., ECCV 2016).

Loss = ``CE(W x, y) + lam * L_C`` with ``L_C = 1/2 * mean_i ||x_i - c_{y_i}||^2`` over the batch.
The paper writes ``L_C`` as a *sum* over the mini-batch; its reference Caffe layer divides by the
batch size, and ``lam = 0.003`` / ``alpha = 0.5`` (the paper's face-recognition setting) go with
that mean, so the mean is used here.

The centres ``c_j`` are a buffer (saved in the state dict, so a checkpoint resumes exactly) and are
not trained by the optimiser: ``L_C`` is computed with the current centres (its gradient reaches
the features only), then, in training mode, every class ``j`` present in the batch is moved by the
paper's rule::

    delta_c_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j),    c_j <- c_j - alpha * delta_c_j

(``n_j`` = images of class ``j`` in the batch). Under DDP the sums and counts are all-reduced
first, so every rank applies the update of the global batch. Centres start at zero.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from tailface.heads.base import HeadOutput, register_head
from tailface.heads.labels import checked_labels


def center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``1/2 * mean_i ||x_i - c_{y_i}||^2`` (in at least float32); no gradient to ``centers``."""
    dtype = torch.promote_types(features.dtype, torch.float32)
    diff = features.to(dtype) - centers.detach()[labels].to(dtype)
    return 0.5 * diff.pow(2).sum(dim=1).mean()


@torch.no_grad()
def center_update(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, alpha: float,
                  all_reduce: bool = False) -> None:
    """The paper's centre update, in place on ``centers`` (``C x E``)."""
    x = features.detach().to(centers.dtype)
    diff_sum = torch.zeros_like(centers).index_add_(0, labels, centers[labels] - x)
    counts = torch.zeros(centers.shape[0], dtype=centers.dtype, device=centers.device)
    counts.index_add_(0, labels, torch.ones_like(labels, dtype=centers.dtype))
    if all_reduce:
        dist.all_reduce(diff_sum)
        dist.all_reduce(counts)
    centers.sub_(alpha * diff_sum / (1.0 + counts)[:, None])


class CenterLossHead(nn.Module):
    centers: torch.Tensor  # buffer, registered in __init__

    def __init__(self, embedding_size: int, num_classes: int, lam: float = 0.003, alpha: float = 0.5):
        super().__init__()
        if lam < 0 or not 0 <= alpha <= 1:
            raise ValueError(f"center loss needs lam >= 0 and alpha in [0, 1], got lam={lam}, alpha={alpha}")
        self.lam, self.alpha = float(lam), float(alpha)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)
        self.register_buffer("centers", torch.zeros(num_classes, embedding_size))

    def extra_repr(self) -> str:
        return f"lam={self.lam}, alpha={self.alpha}"

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        labels = checked_labels(labels, self.weight.shape[0], features.shape[0])
        logits = F.linear(features, self.weight.to(features.dtype))
        loss = F.cross_entropy(logits, labels) + self.lam * center_loss(features, labels, self.centers)
        if self.training:
            distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
            center_update(features, labels, self.centers, self.alpha, all_reduce=distributed)
        return HeadOutput(loss, logits, labels)


@register_head("center_loss")
def center_loss_head(embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    return CenterLossHead(embedding_size, num_classes, **kwargs)
