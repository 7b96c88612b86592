"""Logit-adjusted softmax (``heads/logit_adjusted.py``): loss and gradients against the naive
float64 reference (``naive_class_count.py``) on plain softmax logits and with CosFace / ArcFace
margins, hand-computed values that pin tau and the prior, and the argument checks. The sharded
head is compared with this one in ``test_class_count_sharded.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.heads import naive_class_count as naive

from tailface.data.label_space import ClassStats
from tailface.errors import ConfigError
from tailface.heads import create_head
from tailface.heads.logit_adjusted import LogitAdjustedHead
from tailface.heads.spec import HeadSpec

COUNTS = [1, 2, 3, 7, 40, 5]
B, D = 9, 4


def stats(counts=COUNTS):
    return ClassStats(np.array(counts))


def data(seed=0, c=len(COUNTS)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    w = torch.randn(c, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (B,), generator=g)
    return x, w, y


def head_with(w, **kwargs):
    head = create_head("logit_adjusted", w.shape[1], w.shape[0], class_stats=stats(), **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(w)
    return head


CASES = [  # head kwargs, (kind, s, m) of the reference
    ({}, ("softmax", 1.0, 0.0)),
    ({"tau": 0.5}, ("softmax", 1.0, 0.0)),
    ({"tau": 2.0, "margin": "cosface", "s": 8.0, "m": 0.3}, ("cosface", 8.0, 0.3)),
    ({"margin": "arcface", "s": 8.0, "m": 0.5}, ("arcface", 8.0, 0.5)),
    ({"margin": "arcface"}, ("arcface", 64.0, 0.5)),
    ({"margin": "cosface"}, ("cosface", 64.0, 0.35)),
]


@pytest.mark.parametrize("kwargs,ref", CASES)
def test_loss_and_gradients_match_naive(kwargs, ref):
    x, w, y = data()
    kind, s, m = ref
    head = head_with(w, **kwargs)
    x[0] = -2.0 * w[y[0]] + 0.05 * x[0]  # theta + m passes pi: ArcFace's fallback branch
    xa = x.clone().requires_grad_()
    out = head(xa, y)
    out.loss.backward()
    xn, wn = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss = naive.logit_adjusted_loss(xn, wn, y, COUNTS, kwargs.get("tau", 1.0), kind, s, m)
    loss.backward()
    torch.testing.assert_close(out.loss, loss.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-8, atol=1e-12)
    # reported logits: unadjusted (x . w, or s cos without margin)
    if kind == "softmax":
        torch.testing.assert_close(out.logits, x @ w.t())
    else:
        cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(w, dim=1).t()
        torch.testing.assert_close(out.logits, s * cos)
    assert torch.equal(out.targets, y)


def test_hand_computed_values_pin_tau_and_the_prior():
    """Counts (1, 3): pi = (1/4, 3/4). Zero rows give zero logits, so the loss of a class-0 sample
    is -log(pi_0^tau / sum_c pi_c^tau): log 4 at tau 1 (Balanced Softmax), log 10 at tau 2,
    log(1 + sqrt 3) at tau 1/2, log 2 at tau 0."""
    x = torch.randn(3, 2, dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.long)
    for tau, expected in [(1.0, math.log(4)), (2.0, math.log(10)), (0.5, math.log(1 + math.sqrt(3))),
                          (0.0, math.log(2))]:
        head = LogitAdjustedHead(2, 2, class_stats=stats([1, 3]), tau=tau).double()
        with torch.no_grad():
            head.weight.zero_()
        assert head(x, y).loss.item() == pytest.approx(expected, rel=1e-12)
    # CosFace s = 2, m = 1/2, cos = (1, 0): logits (1, 0) + log pi -> loss log(1 + 3 / e)
    head = LogitAdjustedHead(2, 2, class_stats=stats([1, 3]), margin="cosface", s=2.0, m=0.5).double()
    with torch.no_grad():
        head.weight.copy_(torch.eye(2, dtype=torch.float64))
    loss = head(torch.tensor([[3.0, 0.0]], dtype=torch.float64), torch.tensor([0])).loss
    assert loss.item() == pytest.approx(math.log(1 + 3 / math.e), rel=1e-12)


@pytest.mark.parametrize("name,kwargs", [("softmax", {}), ("arcface", {"s": 8.0, "m": 0.5})])
def test_tau_zero_is_the_unadjusted_head(name, kwargs):
    x, w, y = data(1)
    margin = {"margin": name, **kwargs} if name != "softmax" else {}
    la = head_with(w, tau=0.0, **margin)
    ref = create_head(name, D, len(COUNTS), **kwargs).double()
    with torch.no_grad():
        ref.weight.copy_(w)
    torch.testing.assert_close(la(x, y).loss, ref(x, y).loss, rtol=1e-12, atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no training images"):
        LogitAdjustedHead(2, 3, class_stats=stats([1, 0, 2]))
    with pytest.raises(ValueError, match="describe 6 classes"):
        LogitAdjustedHead(2, 3, class_stats=stats())
    with pytest.raises(ValueError, match="tau"):
        LogitAdjustedHead(2, 6, class_stats=stats(), tau=-1.0)
    with pytest.raises(ValueError, match="needs the training set's class statistics"):
        create_head("logit_adjusted", 2, 6)
    for block, match in [({"s": 16.0}, "apply only with a margin"), ({"margin": "bogus"}, "unknown margin"),
                         ({"tau": "x"}, "could not convert")]:
        with pytest.raises(ConfigError, match=match):
            HeadSpec.from_block({"name": "logit_adjusted", **block})
    spec = HeadSpec.from_block({"name": "logit_adjusted", "margin": "arcface", "s": 16, "sharded": True})
    assert spec.margin is None  # (not a margin head the method's dispersion head could copy)
