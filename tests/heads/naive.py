"""Naive float64 references: explicit loops, one formula per sample (independent of the heads)."""

from __future__ import annotations

import math

import torch


def target_cos(c: torch.Tensor, kind: str, m: float, easy_margin: bool = False) -> torch.Tensor:
    """Target cosine after the margin, via the angle theta = acos(c) (a 0-d tensor in, out)."""
    if kind == "none":
        return c
    if kind == "cosface":
        return c - m
    theta = torch.acos(c)
    if easy_margin:
        return torch.cos(theta + m) if c.item() > 0 else c
    if theta.item() + m < math.pi:
        return torch.cos(theta + m)
    return c - m * math.sin(m)


def cross_entropy_one(logits: list, target: int) -> torch.Tensor:
    """-log softmax of one sample, from a list of 0-d logits."""
    top = max(v.item() for v in logits)
    denom = sum(torch.exp(v - top) for v in logits)
    return -(logits[target] - top - torch.log(denom))


def margin_head_loss(x, w, y, kind, s, m, easy_margin=False):
    losses = []
    for i in range(x.shape[0]):
        xi = x[i] / torch.sqrt(torch.dot(x[i], x[i]))
        row = []
        for j in range(w.shape[0]):
            wj = w[j] / torch.sqrt(torch.dot(w[j], w[j]))
            c = torch.dot(xi, wj)
            row.append(s * (target_cos(c, kind, m, easy_margin) if j == int(y[i]) else c))
        losses.append(cross_entropy_one(row, int(y[i])))
    return sum(losses) / len(losses)


def softmax_loss(x, w, y):
    losses = []
    for i in range(x.shape[0]):
        row = [torch.dot(x[i], w[j]) for j in range(w.shape[0])]
        losses.append(cross_entropy_one(row, int(y[i])))
    return sum(losses) / len(losses)


def center_term(x, y, centers):
    total = 0.0
    for i in range(x.shape[0]):
        d = x[i] - centers[int(y[i])]
        total = total + 0.5 * torch.dot(d, d)
    return total / x.shape[0]


def sqdist(a, b):
    return sum((a[t] - b[t]) ** 2 for t in range(len(a)))


def range_terms(x, y, k, margin):
    """(intra, inter) of the range loss by loops over classes and pairs."""
    classes = sorted({int(v) for v in y})
    intra = torch.zeros((), dtype=x.dtype)
    for c in classes:
        members = [i for i in range(len(y)) if int(y[i]) == c]
        dists = [sqdist(x[a], x[b]) for ai, a in enumerate(members) for b in members[ai + 1:]]
        if not dists:
            continue
        top = sorted(dists, key=lambda d: d.item(), reverse=True)[:k]
        intra = intra + len(top) / sum(1.0 / d for d in top)
    if len(classes) < 2:
        return intra, torch.zeros((), dtype=x.dtype)
    centres = []
    for c in classes:
        members = [x[i] for i in range(len(y)) if int(y[i]) == c]
        centres.append(sum(members) / len(members))
    d_min = min((sqdist(centres[a], centres[b]) for a in range(len(centres)) for b in range(a + 1, len(centres))),
                key=lambda d: d.item())
    inter = torch.clamp(margin - d_min, min=0.0)
    return intra, inter
