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


def dispersion_loss(x, w, y, num_head, super_of_tail, margin="none", s=64.0, m=0.5, mode="sample",
                    renormalize_phi=False, kept=None):
    """Eqs. 6-8 literally, one denominator per sample, over the classes in ``kept`` (global class
    ids; None: all). A super class takes part when its members are kept (all or none are)."""
    n_tail = len(super_of_tail)
    kept = set(range(num_head + n_tail)) if kept is None else {int(c) for c in kept}
    if margin != "none":
        x = torch.stack([x[i] / torch.sqrt(torch.dot(x[i], x[i])) for i in range(x.shape[0])])
        w = torch.stack([w[j] / torch.sqrt(torch.dot(w[j], w[j])) for j in range(w.shape[0])])
    supers = sorted({int(g) for g in super_of_tail})
    members = {g: [num_head + i for i in range(n_tail) if int(super_of_tail[i]) == g] for g in supers}
    live = [g for g in supers if members[g][0] in kept]
    phi = {}
    for g in live:
        phi[g] = sum(w[r] for r in members[g]) / len(members[g])
        if renormalize_phi:
            phi[g] = phi[g] / torch.sqrt(torch.dot(phi[g], phi[g]))

    def logit(value, is_target):
        if margin == "none":
            return value
        return s * (target_cos(value, margin, m) if is_target else value)

    def super_of(k):
        return int(super_of_tail[k - num_head])

    active = {super_of(int(k)) for k in y if int(k) >= num_head}
    losses = []
    for j in range(x.shape[0]):
        k = int(y[j])
        dispersed = ({super_of(k)} if k >= num_head else set()) if mode == "sample" else active
        row = []
        for i in range(num_head):
            if i in kept:
                row.append(logit(torch.dot(w[i], x[j]), i == k))
        for g in live:
            if g in dispersed:
                row.extend(logit(torch.dot(w[r], x[j]), r == k) for r in members[g])
            else:
                row.append(logit(torch.dot(phi[g], x[j]), False))
        target = logit(torch.dot(w[k], x[j]), True)
        top = max(v.item() for v in row)
        losses.append(top + torch.log(sum(torch.exp(v - top) for v in row)) - target)
    return sum(losses) / len(losses)
