"""Semi-Siamese Training (``tailface.method.sst``, the kind ``experiment/sst.py``) against the
naive float64 references of ``naive_sst.py``: the loss and its gradients (no margin, CosFace,
ArcFace; a rank's rows of the global batch; a wrapping queue with empty slots and same-identity
entries), the FIFO queue, the momentum update, the second view of a one-image identity,
shuffle-BN, one whole step of the objective, and the ``sst`` block's errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from tests.method import naive_sst as naive

from tailface.errors import ConfigError
from tailface.experiment import ExperimentConfig
from tailface.heads.margins import Margin
from tailface.method.sst import (
    SemiSiamese,
    enqueue,
    momentum_update,
    second_views,
    semi_siamese_loss,
    shuffled_gallery_features,
    unit,
)

F64 = dict(rtol=1e-10, atol=1e-12)
E = 5


def _unit_rows(g, n):
    return unit(torch.randn(n, E, generator=g, dtype=torch.float64))


def _case(seed=0, pairs=4, size=7):
    """Probe features of the global batch, unit gallery features, labels, and a queue with empty
    slots and entries of the batch's identities."""
    g = torch.Generator().manual_seed(seed)
    f1, f2 = (torch.randn(pairs, E, generator=g, dtype=torch.float64) * 3 for _ in range(2))
    g1, g2 = _unit_rows(g, pairs), _unit_rows(g, pairs)
    y = torch.tensor([3, 1, 4, 0, 6, 2][:pairs])
    queue = _unit_rows(g, size)
    queue_labels = torch.tensor([1, -1, 5, 3, 2, 1, -1, 4, 0][:size])
    return f1, f2, g1, g2, y, queue, queue_labels


@pytest.mark.parametrize("margin", [Margin("none", 4.0), Margin("cosface", 8.0, 0.35), Margin("arcface", 8.0, 0.5)])
@pytest.mark.parametrize("ptr, offset, rows", [(0, 0, 4), (5, 0, 4), (5, 2, 2), (6, 1, 3)])
def test_loss_and_gradients_equal_the_naive_reference(margin, ptr, offset, rows):
    f1, f2, g1, g2, y, queue, queue_labels = _case()
    p1 = f1[offset:offset + rows].clone().requires_grad_(True)
    p2 = f2[offset:offset + rows].clone().requires_grad_(True)
    loss, logits, targets = semi_siamese_loss(p1, p2, g1, g2, y, queue, queue_labels, ptr, margin, offset)
    loss.backward()
    q1, q2 = p1.detach().clone().requires_grad_(True), p2.detach().clone().requires_grad_(True)
    want = naive.loss(q1, q2, g1, g2, y, queue, queue_labels, ptr, margin.kind, margin.scale, margin.value, offset)
    want.backward()
    torch.testing.assert_close(loss.detach(), want.detach(), **F64)
    torch.testing.assert_close(p1.grad, q1.grad, **F64)
    torch.testing.assert_close(p2.grad, q2.grad, **F64)
    assert targets.tolist() == [(ptr + offset + i) % 7 for i in range(rows)]
    assert logits.shape == (rows, 7)


def test_the_queue_is_unchanged_by_the_loss_and_the_gallery_gets_no_gradient():
    f1, f2, g1, g2, y, queue, queue_labels = _case()
    g1.requires_grad_(True)
    before, before_labels = queue.clone(), queue_labels.clone()
    loss, _, _ = semi_siamese_loss(f1.requires_grad_(True), f2, g1, g2, y, queue, queue_labels, 5, Margin("none", 2.0))
    loss.backward()
    assert torch.equal(queue, before) and torch.equal(queue_labels, before_labels)
    assert g1.grad is None


def test_enqueue_is_fifo_with_wrap_around_and_labels():
    g = torch.Generator().manual_seed(1)
    queue = torch.zeros(5, E, dtype=torch.float64)
    labels = torch.full((5,), -1)
    rows, names, ptr = [queue[j].clone() for j in range(5)], [-1] * 5, 0
    for step in range(4):  # 3 entries a step on 5 slots: wraps at the 2nd, 4th step
        batch, batch_labels = _unit_rows(g, 3), torch.tensor([10 * step + i for i in range(3)])
        new_ptr = enqueue(queue, labels, ptr, batch, batch_labels)
        rows, names = naive.with_batch(rows, names, ptr, batch, batch_labels)
        ptr = (ptr + 3) % 5
        assert new_ptr == ptr
        assert torch.equal(queue, torch.stack(rows)) and labels.tolist() == names
    assert labels.tolist() == [31, 32, 21, 22, 30]  # slots 4, 0, 1 last: the oldest entries replaced first


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, E), nn.BatchNorm1d(E)).double()


def test_momentum_update_moves_parameters_only():
    torch.manual_seed(0)
    probe, gallery = _net(), _net()
    gallery(torch.randn(6, 3, 8, 8, dtype=torch.float64))  # running statistics of its own
    buffers = {k: v.clone() for k, v in gallery.named_buffers()}
    want = naive.momentum([p.detach() for p in gallery.parameters()], [p.detach() for p in probe.parameters()], 0.9)
    momentum_update(gallery, probe, 0.9)
    for got, expected in zip(gallery.parameters(), want):
        torch.testing.assert_close(got.detach(), expected, **F64)
    for key, value in gallery.named_buffers():
        assert torch.equal(value, buffers[key]), key


def test_a_one_image_identity_gets_a_mirrored_shifted_second_view():
    g = torch.Generator().manual_seed(2)
    v1 = torch.randn(4, 3, 6, 6, generator=g, dtype=torch.float64)
    v2 = torch.randn(4, 3, 6, 6, generator=g, dtype=torch.float64)
    v2[1] = v1[1]  # one picture twice
    v2[3] = v1[3].flip(-1)  # one picture, one of the two mirrored by the loader
    offsets = np.array([[0, 0], [0, 4], [1, 1], [3, 2]])
    out = second_views(v1, v2, offsets, shift=2)
    assert torch.equal(out[0], v2[0]) and torch.equal(out[2], v2[2])  # two images: kept
    for i in (1, 3):
        assert torch.equal(out[i], naive.shifted_mirror(v1[i], *offsets[i], shift=2)), i
    assert torch.equal(second_views(v1, v1.clone(), np.full((4, 2), 0), shift=0), v1.flip(-1))


def test_shuffle_bn_runs_the_gallery_on_groups_of_permuted_pairs():
    torch.manual_seed(1)
    net = _net().train()
    views = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    order = torch.tensor([4, 0, 5, 2, 1, 3])
    got = shuffled_gallery_features(net, views, 2, order)
    want = torch.empty(6, E, dtype=torch.float64)
    for group in (order[:3], order[3:]):
        want[group] = unit(net(views[group]))
    torch.testing.assert_close(got, want, **F64)
    assert not torch.allclose(got, unit(net(views)))  # other batch statistics than the whole batch's
    torch.testing.assert_close(shuffled_gallery_features(net, views, 1, None), unit(net(views)), **F64)


def test_one_step_of_the_objective_equals_the_equations():
    """forward_images: the momentum update, the second views, the two networks, the loss, the
    queue update, the step count: each against its reference (one process, bn_splits 1)."""
    torch.manual_seed(3)
    probe = _net()
    objective = SemiSiamese(probe, E, momentum=0.8, queue_size=5, margin=Margin("cosface", 6.0, 0.3), seed=11,
                            view_shift=0.25).double()
    with torch.no_grad():  # a gallery that differs from the probe, and a queue with an older entry
        for p in objective.gallery.parameters():
            p.add_(0.1 * torch.randn_like(p))
        objective.queue[:] = unit(torch.randn(5, E, dtype=torch.float64))
        objective.queue_labels[:] = torch.tensor([7, 2, -1, -1, -1])
        objective.queue_ptr.fill_(2)
    g = torch.Generator().manual_seed(4)
    images = torch.randn(8, 3, 8, 8, generator=g, dtype=torch.float64)
    images[5] = images[4]  # pair 2: a one-image identity
    labels = torch.tensor([2, 2, 5, 5, 9, 9, 0, 0])
    queue, queue_labels = objective.queue.clone(), objective.queue_labels.clone()
    gallery = copy.deepcopy(objective.gallery)
    expected_params = naive.momentum([p.detach() for p in gallery.parameters()],
                                     [p.detach() for p in probe.parameters()], 0.8)
    out = objective.forward_images(probe, images, labels)

    rng = np.random.default_rng([11, 0])  # the documented stream: shifts, two permutations, the coin
    offsets = rng.integers(0, 2 * 2 + 1, size=(4, 2))
    rng.permutation(4), rng.permutation(4)
    first_view = rng.random() < 0.5
    with torch.no_grad():
        for p, want in zip(gallery.parameters(), expected_params):
            p.copy_(want)
    for got, want in zip(objective.gallery.parameters(), gallery.parameters()):
        torch.testing.assert_close(got, want, **F64)
    view1, view2 = images[0::2], images[1::2].clone()
    view2[2] = naive.shifted_mirror(view1[2], *offsets[2], shift=2)
    g1, g2 = unit(gallery.train()(view1)).detach(), unit(gallery(view2)).detach()
    f1, f2 = probe(view1), probe(view2)
    want = naive.loss(f1, f2, g1, g2, labels[0::2], queue, queue_labels, 2, "cosface", 6.0, 0.3)
    torch.testing.assert_close(out.loss, want, **F64)
    assert out.targets.tolist() == [2, 3, 4, 0]
    rows, names = naive.with_batch(list(queue), queue_labels.tolist(), 2, g1 if first_view else g2, labels[0::2])
    torch.testing.assert_close(objective.queue, torch.stack(rows), **F64)
    assert objective.queue_labels.tolist() == names == [0, 2, 2, 5, 9]
    assert int(objective.queue_ptr) == 1 and int(objective.steps) == 1
    out.loss.backward()
    assert all(p.grad is not None for p in probe.parameters())
    assert all(p.grad is None and not p.requires_grad for p in objective.gallery.parameters())


def test_the_objective_refuses_a_batch_that_is_not_pairs():
    objective = SemiSiamese(_net(), E, queue_size=8).double()
    images = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="identity pairs"):
        objective.forward_images(_net(), images, torch.tensor([0, 1, 2, 2]))
    with pytest.raises(ConfigError, match="queue_size 1 is smaller than the 2 pairs"):
        SemiSiamese(_net(), E, queue_size=1).double().forward_images(_net(), images, torch.tensor([0, 0, 1, 1]))


TINY = {"model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
        "train": {"batch_size": 8}, "sst": {"queue_size": 8}}


@pytest.mark.parametrize("change, match", [
    ({"sst": {"queue": 8}}, r"sst: unknown key 'queue'; did you mean 'queue_size'\?"),
    ({"sst": {"queue_size": 3}}, "sst.queue_size 3 must hold at least the 4 pairs of a batch"),
    ({"sst": {"momentum": 1.0}}, r"sst.momentum must be a number in \[0.0, 1.0\), got 1.0"),
    ({"sst": {"margin": "sphereface"}}, "sst.margin must be one of none, cosface, arcface"),
    ({"sst": {"bn_splits": 3}}, "sst.bn_splits 3 must divide the 4 pairs"),
    ({"sst": {"queue_size": "big"}}, "sst.queue_size must be a positive integer, got 'big'"),
    ({"train": {"batch_size": 7}}, "train.batch_size 7 must be even"),
    ({"train": {"batch_size": 8, "sampler": "class_aware"}}, "draws identity pairs itself"),
    ({"head": {"name": "arcface"}}, "has no classifier"),
    ({"pretrain": {}}, "pretrain is a baseline block"),
])
def test_the_sst_block_is_checked_when_the_config_is_read(change, match):
    doc = {**TINY, **change}
    if "sst" in change:
        doc["sst"] = {**TINY["sst"], **change["sst"]}
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig.from_dict(doc)


def test_the_kind_draws_pairs_and_round_trips():
    cfg = ExperimentConfig.from_dict(TINY)
    assert cfg.kind.name == "semi-siamese" and cfg.kind.final == "train/final.pt"
    assert cfg.stage_train("train").sampler == {"name": "pk", "p": 4, "k": 2, "min_images": 1}
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    assert "sampler" not in cfg.to_dict()["train"]
    assert cfg.to_dict()["sst"] == {"momentum": 0.999, "queue_size": 8, "margin": "cosface", "m": 0.35,
                                    "scale": 32.0, "bn_splits": 1, "view_shift": 0.1}
