"""What the trainer and checkpoints give heads: the epoch hook (``head.set_epoch(epoch)`` before
each epoch's first step, also after resuming mid-epoch) and class statistics recorded in the head
spec, so that ``load_head`` rebuilds a class-statistics head as it was trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import TinyNet, random_faceset

from tailface.data.label_space import ClassStats
from tailface.errors import DataError
from tailface.heads.base import HeadOutput, register_head
from tailface.heads.sharded import ShardedMarginHead
from tailface.heads.softmax import SoftmaxHead
from tailface.train import TrainConfig, build_head, fit, load_checkpoint, load_head
from tailface.train.checkpoint import save_atomic

CFG = dict(epochs=3, batch_size=12, lr=0.1, warmup_epochs=0.5, milestones=[1], log_every=1, image_size=16,
           progress=False, device="cpu", seed=3)


class EpochSoftmax(SoftmaxHead):
    def __init__(self, embedding_size: int, num_classes: int):
        super().__init__(embedding_size, num_classes)
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class EpochSharded(ShardedMarginHead):
    def __init__(self, embedding_size: int, num_classes: int):
        super().__init__(embedding_size, num_classes, kind="cosface", s=8.0, m=0.1, seed=1)
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def run(head: nn.Module, out, **train) -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet()
    fit(model, head, random_faceset(n=48, classes=6), TrainConfig.from_dict({**CFG, **train}), out)
    return head


@pytest.mark.parametrize("kind", [EpochSoftmax, EpochSharded])
def test_set_epoch_before_every_epoch_and_after_resuming_mid_epoch(tmp_path, kind):
    assert run(kind(8, 6), tmp_path / "full").epochs == [0, 1, 2]  # 4 steps per epoch
    assert run(kind(8, 6), tmp_path / "part", max_steps=6).epochs == [0, 1]  # stops 2 steps into epoch 1
    assert run(kind(8, 6), tmp_path / "part").epochs == [1, 2]  # resumes in epoch 1
    assert load_checkpoint(tmp_path / "part" / "final.pt")["meta"]["global_step"] == 12


def test_the_hook_changes_nothing_else(tmp_path):
    paths = []
    for name, head_class in (("plain", SoftmaxHead), ("hooked", EpochSoftmax)):
        torch.manual_seed(7)
        run(head_class(8, 6), tmp_path / name)
        paths.append(load_checkpoint(tmp_path / name / "final.pt"))
    for key in ("model", "head"):
        assert all(torch.equal(paths[0][key][k], paths[1][key][k]) for k in paths[0][key])


# a head that keeps the class statistics it was built with ------------------------------------------
class PriorSoftmax(SoftmaxHead):
    """Softmax over ``f . w + log prior``."""

    def __init__(self, embedding_size: int, num_classes: int, class_stats: ClassStats):
        super().__init__(embedding_size, num_classes)
        self.class_stats = class_stats
        self.register_buffer("log_prior", torch.from_numpy(np.log(class_stats.prior())).float(), persistent=False)

    def forward(self, features, labels):
        logits = nn.functional.linear(features, self.weight) + self.log_prior
        return HeadOutput(nn.functional.cross_entropy(logits, labels), logits, labels)


@register_head("test-prior-softmax", needs_class_stats=True)
def _prior_softmax(embedding_size: int, num_classes: int, class_stats: ClassStats) -> nn.Module:
    return PriorSoftmax(embedding_size, num_classes, class_stats)


def test_a_class_stats_head_round_trips_through_a_checkpoint(tmp_path):
    faces = random_faceset(n=50, classes=6)  # 9, 9, 8, 8, 8, 8 images
    stats = ClassStats.from_faceset(faces)
    head = build_head("test-prior-softmax", 8, 6, class_stats=stats)
    torch.manual_seed(0)
    final = fit(TinyNet(), head, faces, TrainConfig.from_dict({**CFG, "epochs": 1}), tmp_path / "run")
    spec = load_checkpoint(final)["meta"]["head_spec"]
    assert spec["class_stats"] == {"counts": [9, 9, 8, 8, 8, 8], "thresholds": {"a": 21, "b": 10, "c": 4}}
    loaded, _ = load_head(final)
    assert isinstance(loaded, PriorSoftmax) and loaded.class_stats == stats
    assert torch.equal(loaded.log_prior, head.log_prior) and torch.equal(loaded.weight, head.weight)


def test_old_head_specs_load_and_a_stats_head_without_stats_is_a_data_error(tmp_path):
    old = build_head("softmax", 4, 3)
    spec = {"name": "softmax", "embedding_size": 4, "num_classes": 3, "kwargs": {}}  # as written before stats
    save_atomic({"model": {}, "head": old.state_dict(), "meta": {"head_spec": spec}}, tmp_path / "old.pt")
    loaded, _ = load_head(tmp_path / "old.pt")
    assert torch.equal(loaded.weight, old.weight)
    bad = {**spec, "name": "test-prior-softmax"}
    save_atomic({"model": {}, "head": old.state_dict(), "meta": {"head_spec": bad}}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match="bad.pt: cannot rebuild head 'test-prior-softmax': .*class statistics"):
        load_head(tmp_path / "bad.pt")
