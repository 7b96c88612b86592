"""AdaFace (Kim et al., CVPR 2022, "AdaFace: Quality Adaptive Margin for Face Recognition").

The margin adapts to image quality, with the norm of the feature as its proxy. The head receives
the backbone's raw embedding ``z_i`` (not L2-normalised; every tailface backbone ends in a
linear layer and batch norm), so ``||z_i||`` is at hand. With ``cos_ic`` the cosines of the
normalised features and rows:

    n_i   = clip(||z_i||, 0.001, 100)                      (detached: no gradient)
    mu, sigma <- (1 - a) mu + a mean_i n_i,  (1 - a) sigma + a std_i n_i   (training; a = momentum)
    nz_i  = clip(h (n_i - mu) / (sigma + eps), -1, 1)
    g_angle_i = -m nz_i,   g_add_i = m nz_i + m
    theta_iy = acos(clip(cos_iy, -1 + eps, 1 - eps))
    z_iy  = s (cos(clip(theta_iy + g_angle_i, eps, pi - eps)) - g_add_i)
    z_ic  = s cos_ic  (c != y_i),    loss = mean_i -log softmax(z_i)_y

Defaults (the paper's and its code's): ``m = 0.4``, ``h = 0.333``, ``s = 64``, momentum (the authors' ``t_alpha``)
``a = 0.01``, ``eps = 1e-3``; the running statistics start at ``mu = 20``, ``sigma = 100``.
A low-norm (poor) image, ``nz = -1``, gets ArcFace's ``cos(theta + m)`` (which emphasises easy
samples); ``nz = 0`` gets CosFace's ``cos(theta) - m``; a high-norm (good) one, ``nz = 1``,
``cos(theta - m) - 2m`` (which emphasises hard samples).

Statistics, exactly as done here (as the authors' ``head.py``): in training mode each forward
pass first updates the running ``mu`` / ``sigma`` with this batch's mean and (unbiased) standard
deviation of the clipped norms, then standardises every sample with the *updated* running
values (so with ``a = 0.01`` the batch's own statistics weigh 1%). A batch of one sample updates
``mu`` only (its standard deviation is undefined). In eval mode the running values are used
unchanged. The norms are detached: no gradient flows through ``nz`` or the statistics.
``mu`` and ``sigma`` are persistent buffers (``running_mean``, ``running_std``): in
``state_dict``, so in checkpoints, and a resumed run continues them.

The clamps follow the authors' code: ``theta`` from the target cosine clamped to
``[-1 + eps, 1 - eps]`` (finite ``acos`` gradient), ``theta + g_angle`` clamped to
``[eps, pi - eps]`` (a clamped sample gets no gradient through its target). Decision: only the
target cosine is clamped; the authors clamp every cosine, which changes non-target logits only
where ``|cos| > 1 - eps``. ``HeadOutput.logits`` are ``s cos`` without margin.

Replicated (:class:`AdaFaceHead`: the statistics of the batch it is given; under DDP each rank
its local batch, with rank 0's running values broadcast by DDP before each step) and
class-sharded (:class:`ShardedAdaFaceHead`: every rank computes the statistics of the
all-gathered global batch, the same tensor on every rank, so the running values stay identical
across ranks without communication; they equal the replicated head's on the global batch).
"""

from __future__ import annotations

import math

import torch

from tailface.heads.base import register_head
from tailface.heads.margin_head import MarginHead, MarginHooks
from tailface.heads.sharded import ShardedMarginHead

EPS = 1e-3  # the clamps and the standard deviation's offset (the authors' code)
NORM_RANGE = (1e-3, 100.0)  # the feature norms are clipped to this range (the authors' code)
INITIAL_MEAN, INITIAL_STD = 20.0, 100.0  # the running statistics' starting values (the authors' code)


def _check(m: float, h: float, momentum: float) -> tuple[float, float, float]:
    m, h, momentum = float(m), float(h), float(momentum)
    if not (math.isfinite(m) and m >= 0):
        raise ValueError(f"m must be a finite number >= 0, got {m}")
    if not (math.isfinite(h) and h >= 0):
        raise ValueError(f"h must be a finite number >= 0, got {h}")
    if not 0 < momentum <= 1:
        raise ValueError(f"momentum must lie in (0, 1], got {momentum}")
    return m, h, momentum


class AdaptiveMargin(MarginHooks):
    """The AdaFace target logit (module docstring) as the margin heads' ``loss_logits``, and the
    running norm statistics it keeps."""

    running_mean: torch.Tensor
    running_std: torch.Tensor

    def _init_adaface(self, m: float, h: float, momentum: float) -> None:
        self.m, self.h, self.momentum = _check(m, h, momentum)
        self.register_buffer("running_mean", torch.tensor(INITIAL_MEAN))
        self.register_buffer("running_std", torch.tensor(INITIAL_STD))

    def adaface_repr(self) -> str:
        return f"s={self.s}, m={self.m}, h={self.h}, momentum={self.momentum}"

    def norm_scaler(self, features: torch.Tensor) -> torch.Tensor:
        """``nz_i`` of each feature (``B``, detached); updates the running statistics in training."""
        norms = torch.linalg.vector_norm(features.detach(), dim=1).clamp(*NORM_RANGE)
        if self.training and norms.numel():
            a = self.momentum
            with torch.no_grad():
                mean = norms.mean().to(self.running_mean)
                self.running_mean.copy_(mean * a + (1 - a) * self.running_mean)
                if norms.numel() > 1:
                    std = norms.std().to(self.running_std)
                    self.running_std.copy_(std * a + (1 - a) * self.running_std)
        mu, sigma = self.running_mean.to(norms), self.running_std.to(norms)
        return ((norms - mu) / (sigma + EPS) * self.h).clamp(-1.0, 1.0)

    def loss_logits(self, base: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                    features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        nz = self.norm_scaler(features.to(base.dtype))  # every sample of the (global) batch, targets here or not
        rows = (targets >= 0).nonzero(as_tuple=True)[0]
        cols = targets[rows]
        theta = torch.acos(base[rows, cols].clamp(-1.0 + EPS, 1.0 - EPS))
        g_angle = -self.m * nz[rows]
        g_add = self.m * nz[rows] + self.m
        target = torch.cos((theta + g_angle).clamp(EPS, math.pi - EPS)) - g_add
        return base.index_put((rows, cols), target) * self.s


class AdaFaceHead(AdaptiveMargin, MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, m: float = 0.4, h: float = 0.333, s: float = 64.0,
                 momentum: float = 0.01):
        super().__init__(embedding_size, num_classes, "none", s, 0.0)  # (normalised s cos; the margin: loss_logits)
        self._init_adaface(m, h, momentum)

    def extra_repr(self) -> str:
        return self.adaface_repr()


class ShardedAdaFaceHead(AdaptiveMargin, ShardedMarginHead):
    def __init__(self, embedding_size: int, num_classes: int, m: float = 0.4, h: float = 0.333, s: float = 64.0,
                 momentum: float = 0.01, sample_rate: float = 1.0, seed: int = 0, group=None,
                 init_std: float = 0.01):
        super().__init__(embedding_size, num_classes, kind="none", s=s, m=0.0, sample_rate=sample_rate, seed=seed,
                         group=group, init_std=init_std)
        self._init_adaface(m, h, momentum)

    def extra_repr(self) -> str:
        return f"{self.adaface_repr()}, rank={self.rank}/{self.world_size}, sample_rate={self.sample_rate}"


register_head("adaface", sharded=ShardedAdaFaceHead)(AdaFaceHead)
