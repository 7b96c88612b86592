"""Naive float64 references of sub-center ArcFace and AdaFace: explicit loops, one formula per
sample, written from the papers' equations and the decisions of docs/method.md (independent of
the heads' code). ``kept``: the logit columns (sorted global classes; None: all), as a sampled
sharded head sees them."""

from __future__ import annotations

import math

import torch
from tests.heads.naive import cross_entropy_one, target_cos
from tests.heads.naive_class_count import unit

EPS = 1e-3


def subcenter_loss(x, w, y, kind="arcface", s=64.0, m=0.5, easy_margin=False, kept=None):
    """w: C x K x d. cos_ij = the largest cosine of x_i to the K sub-centres of class j; the
    margin on the target; mean cross-entropy."""
    classes = list(range(w.shape[0])) if kept is None else [int(c) for c in kept]
    losses = []
    for i in range(x.shape[0]):
        row = []
        for j in classes:
            cosines = [torch.dot(unit(x[i]), unit(w[j, k])) for k in range(w.shape[1])]
            c = cosines[0]
            for other in cosines[1:]:
                c = other if other.item() > c.item() else c
            row.append(s * (target_cos(c, kind, m, easy_margin) if j == int(y[i]) else c))
        losses.append(cross_entropy_one(row, classes.index(int(y[i]))))
    return sum(losses) / len(losses)


def norm_statistics(x, mean, std, momentum):
    """The running (mean, std) after one training batch x: the clipped norms' mean and unbiased
    standard deviation, folded in with weight ``momentum``."""
    norms = [min(max(math.sqrt(sum(v * v for v in x[i].tolist())), 1e-3), 100.0) for i in range(x.shape[0])]
    batch_mean = sum(norms) / len(norms)
    new_mean = momentum * batch_mean + (1 - momentum) * mean
    if len(norms) < 2:
        return new_mean, std
    batch_std = math.sqrt(sum((n - batch_mean) ** 2 for n in norms) / (len(norms) - 1))
    return new_mean, momentum * batch_std + (1 - momentum) * std


def adaface_loss(x, w, y, mean, std, m=0.4, h=0.333, s=64.0, kept=None):
    """The AdaFace loss with the running statistics (mean, std) already updated by this batch."""
    classes = list(range(w.shape[0])) if kept is None else [int(c) for c in kept]
    losses = []
    for i in range(x.shape[0]):
        norm = min(max(math.sqrt(sum(v * v for v in x[i].tolist())), 1e-3), 100.0)
        nz = min(max((norm - mean) / (std + EPS) * h, -1.0), 1.0)
        g_angle, g_add = -m * nz, m * nz + m
        row = []
        for j in classes:
            c = torch.dot(unit(x[i]), unit(w[j]))
            if j == int(y[i]):
                theta = torch.acos(torch.clamp(c, -1 + EPS, 1 - EPS))
                row.append(s * (torch.cos(torch.clamp(theta + g_angle, EPS, math.pi - EPS)) - g_add))
            else:
                row.append(s * c)
        losses.append(cross_entropy_one(row, classes.index(int(y[i]))))
    return sum(losses) / len(losses)


# VPL ---------------------------------------------------------------------------------------------
def vpl_live(iteration, stamps, start_iter, delta):
    """Per class: live at training iteration ``iteration`` (1-based): past the start, written
    (stamp > 0) and written at most ``delta`` iterations before."""
    return [iteration > start_iter and t > 0 and iteration - t <= delta for t in stamps]


def vpl_loss(x, w, y, memory, live, lam=0.15, s=64.0, m=0.5, kept=None):
    """The VPL loss: prototype p_j = unit((1 - lam) unit(w_j) + lam v_j) for a live class, unit(w_j)
    otherwise; ArcFace's margin at the target; mean cross-entropy."""
    classes = list(range(w.shape[0])) if kept is None else [int(c) for c in kept]
    protos = {}
    for j in classes:
        protos[j] = unit((1 - lam) * unit(w[j]) + lam * memory[j]) if live[j] else unit(w[j])
    losses = []
    for i in range(x.shape[0]):
        row = []
        for j in classes:
            c = torch.dot(unit(x[i]), protos[j])
            row.append(s * (target_cos(c, "arcface", m) if j == int(y[i]) else c))
        losses.append(cross_entropy_one(row, classes.index(int(y[i]))))
    return sum(losses) / len(losses)


def vpl_write(memory, stamps, x, y, iteration):
    """The memory after training iteration ``iteration`` on batch (x, y): each sample in turn writes
    its unit feature and the iteration into its class's entry (so the last one of a class stays)."""
    memory, stamps = memory.clone(), list(stamps)
    for i in range(x.shape[0]):
        memory[int(y[i])] = unit(x[i].detach())
        stamps[int(y[i])] = iteration
    return memory, stamps
