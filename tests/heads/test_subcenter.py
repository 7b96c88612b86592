"""Sub-center ArcFace (``heads/subcenter.py``): loss and gradients against the naive float64
reference (``naive_tail_heads.py``) with ArcFace (both branches) and CosFace margins, ``K = 1`` is
the ArcFace head, hand-computed dominant sub-centres and angles, and the argument checks. The
sharded head is compared with this one in ``test_tail_heads_sharded.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.heads import naive_tail_heads as naive

from tailface.errors import ConfigError
from tailface.heads import create_head
from tailface.heads.base import create_sharded_head
from tailface.heads.sharded import init_rows
from tailface.heads.spec import HeadSpec
from tailface.heads.subcenter import SubCenterHead, dominant_subcentres

B, D, C = 9, 4, 6


def data(seed=0, k=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    w = torch.randn(C, k, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B,), generator=g)
    return x, w, y


CASES = [  # head kwargs, (kind, s, m) of the reference
    ({}, ("arcface", 64.0, 0.5)),
    ({"s": 8.0, "m": 0.5}, ("arcface", 8.0, 0.5)),
    ({"k": 1, "s": 8.0, "m": 0.3}, ("arcface", 8.0, 0.3)),
    ({"k": 4, "margin": "cosface", "s": 8.0}, ("cosface", 8.0, 0.35)),
]


@pytest.mark.parametrize("kwargs,ref", CASES)
def test_loss_and_gradients_match_naive(kwargs, ref):
    k = kwargs.get("k", 3)
    kind, s, m = ref
    x, w, y = data(k=k)
    w[y[0]] = w[y[0], 0] + 0.05 * w[y[0]]  # sub-centres close together, x_0 opposite all of them:
    x[0] = -2.0 * w[y[0], 0] + 0.05 * x[0]  # ArcFace's theta + m > pi branch on its target
    assert torch.einsum("kd,d->k", F.normalize(w[y[0]], dim=1), F.normalize(x[0], dim=0)).max() < math.cos(
        math.pi - m)
    head = create_head("subcenter_arcface", D, C, **kwargs).double()
    assert head.weight.shape == (C, k, D)
    with torch.no_grad():
        head.weight.copy_(w)
    xa = x.clone().requires_grad_()
    out = head(xa, y)
    out.loss.backward()
    xn, wn = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss = naive.subcenter_loss(xn, wn, y, kind, s, m)
    loss.backward()
    torch.testing.assert_close(out.loss, loss.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-8, atol=1e-12)
    cos = torch.einsum("bd,ckd->bck", F.normalize(x, dim=1), F.normalize(w, dim=2)).amax(2)
    torch.testing.assert_close(out.logits, s * cos)  # reported logits: s max_k cos, no margin


def test_only_the_closest_subcentre_of_each_pair_gets_a_gradient():
    """One sample, two classes of three sub-centres: per class only the sub-centre with the largest
    cosine (the max) gets a gradient."""
    x, w, _ = data(3)
    head = SubCenterHead(D, 2, k=3, s=8.0, m=0.5).double()
    with torch.no_grad():
        head.weight.copy_(w[:2])
    head(x[:1], torch.tensor([1])).loss.backward()
    closest = torch.einsum("d,ckd->ck", F.normalize(x[0], dim=0), F.normalize(w[:2], dim=2)).argmax(1)
    moved = head.weight.grad.abs().sum(2) > 0
    assert moved.tolist() == [[bool(j == int(closest[c])) for j in range(3)] for c in range(2)]


def test_one_subcentre_is_the_arcface_head():
    x, w, y = data(1, k=1)
    sub = SubCenterHead(D, C, k=1, s=16.0, m=0.4).double()
    ref = create_head("arcface", D, C, s=16.0, m=0.4).double()
    with torch.no_grad():
        sub.weight.copy_(w)
        ref.weight.copy_(w[:, 0])
    torch.testing.assert_close(sub(x, y).loss, ref(x, y).loss, rtol=1e-12, atol=1e-12)


def _at(deg, scale=1.0):
    return [scale * math.cos(math.radians(deg)), scale * math.sin(math.radians(deg))]


def test_hand_computed_dominant_subcentres_and_angles():
    """Class 0's sub-centres at 0, 90, 180 degrees; its samples at 10, -20, 80 pick 0, 0, 1: the
    dominant is 0, the angles 10, 20, 80. Class 1's at 45, 135, 270; samples at 130, 140, -80
    pick 1, 1, 2: dominant 1, angles 5, 5, 145 (from 135 to 280). Class 2 has no sample: -1.
    Sub-centre and feature norms do not matter."""
    weight = torch.tensor([[_at(0, 2.0), _at(90), _at(180, 0.5)],
                           [_at(45), _at(135, 3.0), _at(270)],
                           [_at(0), _at(1), _at(2)]])
    features = torch.tensor([_at(10, 5.0), _at(-20), _at(80, 0.1), _at(130), _at(140, 7.0), _at(-80)])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    got = dominant_subcentres(weight, features, labels)
    assert got.dominant.tolist() == [0, 1, -1]
    assert got.angle.dtype == torch.float64
    np.testing.assert_allclose(got.angle.numpy(), [10, 20, 80, 5, 5, 145], atol=1e-5)
    chunked = dominant_subcentres(weight, features, labels, chunk=2)  # chunks give the same
    assert torch.equal(chunked.angle, got.angle) and torch.equal(chunked.dominant, got.dominant)
    # the majority, not the first sample: class 0's samples at 85, 100, -10 pick 1, 1, 0
    got = dominant_subcentres(weight, torch.tensor([_at(85), _at(100), _at(-10)]), torch.tensor([0, 0, 0]))
    assert got.dominant.tolist() == [1, -1, -1]
    np.testing.assert_allclose(got.angle.numpy(), [5, 10, 100], atol=1e-5)


def test_sharded_rows_start_from_world_size_independent_draws():
    head = create_sharded_head("subcenter_arcface", D, C, seed=4, k=2)
    assert head.weight.shape == (C, 2, D)
    assert torch.equal(head.weight, init_rows(np.arange(C), 2 * D, seed=4).view(C, 2, D))


def test_bad_arguments():
    with pytest.raises(ValueError, match="k"):
        SubCenterHead(2, 3, k=0)
    with pytest.raises(ValueError, match="not 'none'"):
        SubCenterHead(2, 3, margin="none")
    with pytest.raises(ValueError, match="D x 2|C x K x d"):
        dominant_subcentres(torch.zeros(3, 2), torch.zeros(1, 2), torch.tensor([0]))
    with pytest.raises(ValueError, match="labels"):
        dominant_subcentres(torch.ones(3, 2, 2), torch.ones(1, 2), torch.tensor([3]))
    for block, match in [({"k": 1.5}, "k"), ({"margin": "bogus"}, "unknown margin"), ({"bad": 1}, "unexpected")]:
        with pytest.raises(ConfigError, match=match):
            HeadSpec.from_block({"name": "subcenter_arcface", **block})
    spec = HeadSpec.from_block({"name": "subcenter_arcface", "k": 2, "margin": "cosface", "sharded": True})
    assert spec.margin is None  # (its margin is on sub-centre cosines: not one the dispersion head applies)
