"""LDAM with deferred re-weighting (``heads/ldam.py``): loss and gradients against the naive
float64 reference (``naive_class_count.py``) before and after ``drw_epoch``, hand-computed values
that pin the exponent 1/4, max_m and the effective-number weights, and the argument checks. The
sharded head is compared with this one in ``test_class_count_sharded.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.heads import naive_class_count as naive

from tailface.data.label_space import ClassStats
from tailface.errors import ConfigError
from tailface.heads import create_head
from tailface.heads.ldam import LDAMHead
from tailface.heads.spec import HeadSpec

COUNTS = [1, 2, 3, 7, 40, 5]
B, D = 9, 4


def stats(counts=COUNTS):
    return ClassStats(np.array(counts))


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    w = torch.randn(len(COUNTS), D, generator=g, dtype=torch.float64)
    y = torch.randint(0, len(COUNTS), (B,), generator=g)
    return x, w, y


@pytest.mark.parametrize("epoch,weighted", [(0, False), (2, False), (3, True), (7, True)])
@pytest.mark.parametrize("kwargs", [{}, {"s": 16.0, "max_m": 0.3, "beta": 0.9}])
def test_loss_and_gradients_match_naive_before_and_after_drw(kwargs, epoch, weighted):
    x, w, y = data()
    head = create_head("ldam", D, len(COUNTS), class_stats=stats(), drw_epoch=3, **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(w)
    head.set_epoch(epoch)
    xa = x.clone().requires_grad_()
    out = head(xa, y)
    out.loss.backward()
    xn, wn = x.clone().requires_grad_(), w.clone().requires_grad_()
    beta = kwargs.get("beta", 0.9999) if weighted else None
    loss = naive.ldam_loss(xn, wn, y, COUNTS, kwargs.get("s", 30.0), kwargs.get("max_m", 0.5), beta)
    loss.backward()
    torch.testing.assert_close(out.loss, loss.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-8, atol=1e-12)
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(w, dim=1).t()
    torch.testing.assert_close(out.logits, head.s * cos)  # reported logits: s cos, no margin


def test_hand_computed_margins_and_weights():
    """Counts (1, 16, 81): n^(-1/4) = (1, 1/2, 1/3), so Delta = max_m (1, 1/2, 1/3). Rows = the
    unit vectors, s = 2: a class-1 sample on its row has logits (0, 2 (1 - 1/4), 0) with
    max_m = 1/2, loss log(1 + 2 e^-1.5). Effective numbers, beta = 1/2, counts (1, 2, 3):
    (1 - beta) / (1 - beta^n) = (1, 2/3, 4/7), scaled to sum 3: (63, 42, 36) / 47."""
    head = LDAMHead(3, 3, class_stats=stats([1, 16, 81]), s=2.0, max_m=0.5).double()
    torch.testing.assert_close(head.class_margins, torch.tensor([0.5, 0.25, 0.5 / 3], dtype=torch.float64))
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, dtype=torch.float64))
    loss = head(torch.tensor([[0.0, 5.0, 0.0]], dtype=torch.float64), torch.tensor([1])).loss
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-1.5)), rel=1e-12)

    head = LDAMHead(3, 3, class_stats=stats([1, 2, 3]), s=2.0, max_m=0.5, beta=0.5, drw_epoch=1).double()
    torch.testing.assert_close(head.class_weights, torch.tensor([63, 42, 36], dtype=torch.float64) / 47)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, dtype=torch.float64))
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    delta2 = 0.5 * (1 / 3) ** 0.25  # Delta of class 2 (n = 3) with max_m on class 0 (n = 1)
    l0 = math.log(1 + 2 * math.exp(-1.0))  # logits (2 (1 - 1/2), 0, 0)
    l2 = math.log(1 + 2 * math.exp(-2 * (1 - delta2)))
    assert head(x, y).loss.item() == pytest.approx((l0 + l2) / 2, rel=1e-12)  # epoch 0: unweighted
    head.set_epoch(1)
    assert head(x, y).loss.item() == pytest.approx((63 * l0 + 36 * l2) / 99, rel=1e-12)


def test_equal_counts_give_cosface():
    """All classes the same size: every Delta is max_m, the weights are 1: the CosFace head."""
    x, w, y = data(1)
    ldam = LDAMHead(D, 6, class_stats=stats([4] * 6), s=16.0, max_m=0.35, drw_epoch=0).double()
    ref = create_head("cosface", D, 6, s=16.0, m=0.35).double()
    with torch.no_grad():
        ldam.weight.copy_(w)
        ref.weight.copy_(w)
    assert ldam.reweighting
    torch.testing.assert_close(ldam(x, y).loss, ref(x, y).loss, rtol=1e-12, atol=1e-12)


def test_without_drw_epoch_never_reweights():
    head = LDAMHead(D, 6, class_stats=stats())
    head.set_epoch(10_000)
    assert not head.reweighting and head.sample_weight(torch.tensor([0, 1])) is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="no training images"):
        LDAMHead(2, 3, class_stats=stats([1, 0, 2]))
    with pytest.raises(ValueError, match="needs the training set's class statistics"):
        create_head("ldam", 2, 6)
    for block, match in [({"beta": 1.0}, "beta"), ({"drw_epoch": -1}, "drw_epoch"), ({"drw_epoch": 1.5}, "drw_epoch"),
                         ({"max_m": -0.1}, "max_m"), ({"s": 0}, "scale"), ({"m": 0.2}, "unexpected")]:
        with pytest.raises(ConfigError, match=match):
            HeadSpec.from_block({"name": "ldam", **block})
    assert HeadSpec.from_block({"name": "ldam", "drw_epoch": 16, "sharded": "auto"}).margin is None
