"""DispersionHead against a naive float64 transcription of the paper's Eqs. 6-8."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tailface.heads.margins import Margin
from tailface.method.dispersion import DispersionHead, create_dispersion_head, init_from_prototype, member_table


def naive_loss(features, weight, labels, num_head, super_of_tail, margin="none", s=64.0, m=0.5,
               mode="sample", renormalize_phi=False):
    """Literal Eq. 6 / Eq. 8: one denominator per sample, the tail part summed over tail classes
    as (1/n_g) exp(Phi_g . f) for aggregated super classes, exp(w_i . f) for dispersed ones."""
    f, w = features, weight
    if margin != "none":
        f = f / f.norm(dim=1, keepdim=True)
        w = w / w.norm(dim=1, keepdim=True)
    n_tail = len(super_of_tail)
    n_g = np.bincount(super_of_tail)
    phi = {}
    for g in range(len(n_g)):
        member_rows = [num_head + i for i in range(n_tail) if super_of_tail[i] == g]
        phi[g] = sum(w[r] for r in member_rows) / n_g[g]
        if renormalize_phi:
            phi[g] = phi[g] / phi[g].norm()

    def logit(value, is_target):
        if margin == "none":
            return value
        if is_target:
            if margin == "cosface":
                value = value - m
            else:
                theta = torch.acos(value)
                value = torch.cos(theta + m) if theta + m < math.pi else value - m * math.sin(m)
        return s * value

    tail_labels = [int(y) - num_head for y in labels if y >= num_head]
    active = {int(super_of_tail[i]) for i in tail_labels}
    losses = []
    for j, k in enumerate(labels.tolist()):
        if mode == "sample":
            dispersed = {int(super_of_tail[k - num_head])} if k >= num_head else set()
        else:
            dispersed = active
        numerator = torch.exp(logit(w[k] @ f[j], True))
        denominator = 0.0
        for i in range(num_head):
            denominator = denominator + torch.exp(logit(w[i] @ f[j], i == k))
        for i in range(n_tail):
            g = int(super_of_tail[i])
            if g in dispersed:
                denominator = denominator + torch.exp(logit(w[num_head + i] @ f[j], num_head + i == k))
            else:
                denominator = denominator + torch.exp(logit(phi[g] @ f[j], False)) / n_g[g]
        losses.append(-torch.log(numerator / denominator))
    return torch.stack(losses).mean()


def random_structure(rng, n_tail, n_super, big=False):
    """Random super classes covering 0..n_super-1, with singletons, optionally one very large one."""
    sup = rng.integers(0, n_super, size=n_tail)
    sup[:n_super] = np.arange(n_super)  # every super class non-empty
    if big:
        sup[n_super:] = 0  # one super class takes all the rest
    rng.shuffle(sup)
    return sup


CASES = [  # (margin, mode, renormalize_phi, big)
    ("none", "sample", False, False), ("none", "sample", False, True), ("none", "batch", False, False),
    ("none", "batch", False, True), ("arcface", "sample", False, True), ("arcface", "batch", False, False),
    ("cosface", "sample", False, False), ("cosface", "batch", True, True), ("arcface", "sample", True, False),
]


@pytest.mark.parametrize("margin,mode,renorm,big", CASES)
def test_matches_naive_values_and_gradients(margin, mode, renorm, big):
    rng = np.random.default_rng(hash((margin, mode, renorm, big)) % 2**32)
    num_head, n_tail, n_super, d, batch = 5, 23, 7, 6, 12
    sup = random_structure(rng, n_tail, n_super, big)
    scale = 3.0 if margin == "none" else 1.0
    feats = torch.tensor(rng.normal(size=(batch, d)) * scale, dtype=torch.float64)
    weight = torch.tensor(rng.normal(size=(num_head + n_tail, d)), dtype=torch.float64)
    labels = torch.tensor(rng.integers(0, num_head + n_tail, size=batch))
    labels[:3] = torch.tensor([0, num_head, num_head + n_tail - 1])  # head and tail samples present

    head = DispersionHead(d, num_head, sup, margin=Margin(margin, 16.0, 0.3), mode=mode,
                          renormalize_phi=renorm).double()
    with torch.no_grad():
        head.weight.copy_(weight)
    f1 = feats.clone().requires_grad_(True)
    out = head(f1, labels)
    out.loss.backward()

    w2 = weight.clone().requires_grad_(True)
    f2 = feats.clone().requires_grad_(True)
    ref = naive_loss(f2, w2, labels, num_head, sup, margin, 16.0, 0.3, mode, renorm)
    ref.backward()
    torch.testing.assert_close(out.loss, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f1.grad, f2.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(head.weight.grad, w2.grad, rtol=1e-8, atol=1e-10)
    # the target column of a tail sample holds its whole super class (log-sum-exp of the members,
    # at least the target's own logit), so the cross-entropy of the returned logits is a lower bound
    assert F.cross_entropy(out.logits, out.targets) <= ref + 1e-12
    assert out.logits.shape == (batch, num_head + n_super)


@pytest.mark.parametrize("margin", ["none", "arcface"])
def test_all_singletons_equal_plain_softmax(margin):
    rng = np.random.default_rng(1)
    num_head, n_tail, d, batch = 4, 9, 5, 16
    feats = torch.tensor(rng.normal(size=(batch, d)))
    weight = torch.tensor(rng.normal(size=(num_head + n_tail, d)))
    labels = torch.tensor(rng.integers(0, num_head + n_tail, size=batch))
    head = DispersionHead(d, num_head, rng.permutation(n_tail), margin=Margin(margin, 10.0, 0.5)).double()
    with torch.no_grad():
        head.weight.copy_(weight)
    loss = head(feats, labels).loss
    if margin == "none":
        logits = feats @ weight.t()
    else:
        cos = F.normalize(feats) @ F.normalize(weight).t()
        target = cos.gather(1, labels[:, None])
        theta = torch.acos(target)
        cos = cos.scatter(1, labels[:, None], torch.cos(theta + 0.5))
        logits = 10.0 * cos
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))


def test_batch_mode_equals_sample_mode_with_one_tail_sample():
    rng = np.random.default_rng(2)
    num_head, sup, d = 6, random_structure(rng, 20, 5, big=True), 8
    feats = torch.tensor(rng.normal(size=(10, d)))
    labels = torch.tensor(rng.integers(0, num_head, size=10))
    labels[4] = num_head + int(np.flatnonzero(sup == 0)[0])
    heads = [DispersionHead(d, num_head, sup, mode=mode).double() for mode in ("sample", "batch")]
    heads[1].weight.data.copy_(heads[0].weight.data)
    outs = [h(feats, labels) for h in heads]
    per_row = [F.cross_entropy(o.logits, o.targets, reduction="none") for o in outs]
    # the single tail sample sees the same denominator in both modes ...
    torch.testing.assert_close(per_row[0][4], per_row[1][4])
    # ... while head samples see its super class dispersed only in batch mode
    assert not torch.allclose(per_row[0][:4], per_row[1][:4])
    # a batch of that one tail sample: identical losses, logits and gradients
    grads = []
    for h in heads:
        h.weight.grad = None
        out = h(feats[4:5], labels[4:5])
        out.loss.backward()
        grads.append(h.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    torch.testing.assert_close(*(h(feats[4:5], labels[4:5]).loss for h in heads))


def test_gradient_reaches_member_rows_through_phi():
    sup = np.array([0, 0, 0, 1])
    head = DispersionHead(3, 1, sup).double()
    feats = torch.randn(2, 3, dtype=torch.float64)
    head(feats, torch.tensor([0, 0])).loss.backward()
    grad = head.weight.grad
    # head samples only: tail rows of one super class share one gradient (Phi's / n_g)
    torch.testing.assert_close(grad[1], grad[2])
    torch.testing.assert_close(grad[1], grad[3])
    assert grad[1].abs().sum() > 0


def test_member_table_and_initialisation():
    sup = np.array([2, 0, 2, 1, 2])
    members, mask, slot = member_table(sup)
    assert members.shape == (3, 3)
    assert mask.sum() == 5
    for i, g in enumerate(sup):
        assert members[g, slot[i]] == i and mask[g, slot[i]]
    proto = torch.arange(4 + 3, dtype=torch.float32)[:, None].repeat(1, 2)  # row r = (r, r)
    init = init_from_prototype(proto, sup, num_head=4)
    expected_rows = [0, 1, 2, 3] + [4 + g for g in sup]
    torch.testing.assert_close(init[:, 0], torch.tensor(expected_rows, dtype=torch.float32))
    head = create_dispersion_head(2, 4, sup, prototype_weight=proto)
    torch.testing.assert_close(head.weight.data, init)
    with pytest.raises(ValueError, match="super classes"):
        init_from_prototype(proto, np.array([0, 3]), num_head=4)
    with pytest.raises(ValueError, match="at least one"):
        member_table(np.array([0, 2]))


def test_bad_labels_are_rejected():
    head = DispersionHead(3, 2, np.array([0, 0]))
    with pytest.raises(ValueError, match="labels must be in"):
        head(torch.randn(2, 3), torch.tensor([0, 4]))


def test_normalize_rows_matches_autograd():
    from tailface.heads.normalize import normalize_rows

    w = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(7, 5, dtype=torch.float64)
    (normalize_rows(w) * g).sum().backward()
    ours = w.grad.clone()
    w.grad = None
    (F.normalize(w, dim=1) * g).sum().backward()
    torch.testing.assert_close(ours, w.grad)
    torch.testing.assert_close(normalize_rows(w), F.normalize(w, dim=1))
