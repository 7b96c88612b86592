"""Naive float64 references of the class-count-aware losses (logit-adjusted softmax, LDAM-DRW):
explicit loops, one formula per sample, written from the papers' equations (independent of the
heads' code). ``kept``: the logit columns (sorted global classes; None: all), as a sampled sharded
head sees them."""

from __future__ import annotations

import math

import torch
from tests.heads.naive import cross_entropy_one, target_cos


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.sqrt(torch.dot(v, v))


def log_prior(counts) -> list[float]:
    """log pi_c = log(n_c / sum_k n_k)."""
    total = sum(counts)
    return [math.log(n / total) for n in counts]


def logit_adjusted_loss(x, w, y, counts, tau, kind="softmax", s=1.0, m=0.0, easy_margin=False, kept=None):
    """mean_i -log softmax(z_i + tau log pi)_{y_i}; z = x . w (softmax) or s * margin(cos)."""
    classes = list(range(w.shape[0])) if kept is None else [int(c) for c in kept]
    lp = log_prior(counts)
    losses = []
    for i in range(x.shape[0]):
        row = []
        for j in classes:
            if kind == "softmax":
                z = torch.dot(x[i], w[j])
            else:
                c = torch.dot(unit(x[i]), unit(w[j]))
                z = s * (target_cos(c, kind, m, easy_margin) if j == int(y[i]) else c)
            row.append(z + tau * lp[j])
        losses.append(cross_entropy_one(row, classes.index(int(y[i]))))
    return sum(losses) / len(losses)


def ldam_margins(counts, max_m) -> list[float]:
    """Delta_c = C / n_c^(1/4), C such that the largest Delta is max_m."""
    raw = [1.0 / n ** 0.25 for n in counts]
    const = max_m / max(raw)
    return [const * r for r in raw]


def effective_number_weights(counts, beta) -> list[float]:
    """1 / E_n with E_n = (1 - beta^n) / (1 - beta), rescaled to sum to the number of classes."""
    inverse = [(1.0 - beta) / (1.0 - beta ** n) for n in counts]
    total = sum(inverse)
    return [len(counts) * v / total for v in inverse]


def ldam_loss(x, w, y, counts, s, max_m, beta=None, kept=None):
    """LDAM: target logit s (cos_y - Delta_y), others s cos; beta None: mean over the samples, else
    the effective-number weighted mean sum_i w_{y_i} l_i / sum_i w_{y_i}."""
    classes = list(range(w.shape[0])) if kept is None else [int(c) for c in kept]
    delta = ldam_margins(counts, max_m)
    weights = effective_number_weights(counts, beta) if beta is not None else [1.0] * len(counts)
    total, norm = 0.0, 0.0
    for i in range(x.shape[0]):
        yi = int(y[i])
        row = []
        for j in classes:
            c = torch.dot(unit(x[i]), unit(w[j]))
            row.append(s * (c - delta[j]) if j == yi else s * c)
        total = total + weights[yi] * cross_entropy_one(row, classes.index(yi))
        norm += weights[yi]
    return total / norm
