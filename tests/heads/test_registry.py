"""The head registry (heads/base.py): class statistics go to the heads that ask for them and to no
other; sharded builders are looked up in it (softmax / CosFace / ArcFace build the same sharded
heads as before the registry); HeadSpec and build_sharded_head ask it instead of lists of names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from tailface.data.label_space import ClassStats
from tailface.errors import ConfigError
from tailface.heads.base import (
    create_head,
    create_sharded_head,
    needs_class_stats,
    register_head,
    shardable_heads,
)
from tailface.heads.sharded import ShardedMarginHead, init_rows
from tailface.heads.softmax import SoftmaxHead
from tailface.heads.spec import HeadSpec
from tailface.train.checkpoint import spec_of
from tailface.train.sharded import build_sharded_head

RECEIVED: dict[str, dict] = {}


def _sharded_stats_head(embedding_size: int, num_classes: int, *, sample_rate: float, seed: int,
                        class_stats: ClassStats) -> nn.Module:
    RECEIVED["sharded"] = {"class_stats": class_stats}
    return ShardedMarginHead(embedding_size, num_classes, kind="softmax", s=1.0, m=0.0, sample_rate=sample_rate,
                             seed=seed)


@register_head("test-stats-head", needs_class_stats=True, sharded=_sharded_stats_head)
def _stats_head(embedding_size: int, num_classes: int, class_stats: ClassStats, tau: float = 1.0) -> nn.Module:
    RECEIVED["stats"] = {"class_stats": class_stats, "tau": tau, "draw": torch.rand(1)}
    return SoftmaxHead(embedding_size, num_classes)


@register_head("test-plain-head")
def _plain_head(embedding_size: int, num_classes: int, **kwargs) -> nn.Module:
    RECEIVED["plain"] = dict(kwargs)
    return SoftmaxHead(embedding_size, num_classes)


def test_a_head_that_needs_stats_gets_them_and_others_never_do():
    stats = ClassStats(np.array([30, 2, 5]))
    assert needs_class_stats("test-stats-head") and not needs_class_stats("test-plain-head")
    assert not needs_class_stats("softmax")
    create_head("test-stats-head", 4, 3, class_stats=stats, tau=0.5)
    assert RECEIVED["stats"]["class_stats"] is stats and RECEIVED["stats"]["tau"] == 0.5
    create_head("test-plain-head", 4, 3, class_stats=stats, extra=1)
    assert RECEIVED["plain"] == {"extra": 1}  # no class_stats
    assert isinstance(create_head("softmax", 4, 3, class_stats=stats), SoftmaxHead)


def test_missing_or_mismatched_stats_are_clear_errors():
    with pytest.raises(ValueError, match="'test-stats-head' needs the training set's class statistics"):
        create_head("test-stats-head", 4, 3)
    with pytest.raises(ValueError, match="describe 2 classes, the head has 3"):
        create_head("test-stats-head", 4, 3, class_stats=ClassStats(np.array([1, 2])))
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        needs_class_stats("nope")


def test_head_spec_test_builds_a_stats_head_with_placeholder_stats_and_untouched_rng():
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    spec = HeadSpec.from_block({"name": "test-stats-head", "tau": 2.0, "sharded": True})
    assert torch.equal(torch.rand(1), expected)
    assert RECEIVED["stats"]["class_stats"] == ClassStats.placeholder(2) and spec.kwargs == {"tau": 2.0}
    with pytest.raises(ConfigError, match="unexpected keyword argument 'bad'"):
        HeadSpec.from_block({"name": "test-stats-head", "bad": 1})


def test_shardable_heads_come_from_the_registry():
    assert {"softmax", "cosface", "arcface", "test-stats-head"} <= set(shardable_heads())
    assert not {"center_loss", "range_loss", "test-plain-head"} & set(shardable_heads())
    with pytest.raises(ConfigError, match="'test-plain-head' has no sharded version"):
        HeadSpec.from_block({"name": "test-plain-head", "sharded": "auto"})
    with pytest.raises(ValueError, match="'center_loss' has no sharded version"):
        build_sharded_head("center_loss", 4, 3)


@pytest.mark.parametrize("name, kwargs, kind, s, m, easy", [
    ("softmax", {}, "softmax", 1.0, 0.0, False),
    ("cosface", {}, "cosface", 64.0, 0.35, False),
    ("cosface", {"s": 30, "m": 0.2}, "cosface", 30.0, 0.2, False),
    ("arcface", {}, "arcface", 64.0, 0.5, False),
    ("arcface", {"s": 16.0, "m": 0.3, "easy_margin": True}, "arcface", 16.0, 0.3, True),
])
def test_sharded_margin_heads_are_the_same_as_before(name, kwargs, kind, s, m, easy):
    """The registry's sharded builders give the head the former ``build_sharded_head`` built:
    ``ShardedMarginHead(kind=name, s, m, easy_margin, sample_rate, seed)``, rows from ``seed``."""
    head = build_sharded_head(name, 6, 5, 0.5, 7, **kwargs)
    before = ShardedMarginHead(6, 5, kind=kind, s=s, m=m, easy_margin=easy, sample_rate=0.5, seed=7)
    assert type(head) is ShardedMarginHead
    assert (head.kind, head.s, head.m, head.easy_margin, head.sample_rate, head.seed) == (kind, s, m, easy, 0.5, 7)
    assert torch.equal(head.weight, before.weight)
    assert torch.equal(head.weight, init_rows(np.arange(5), 6, seed=7))
    assert spec_of(head) == {"name": name, "embedding_size": 6, "num_classes": 5, "kwargs": kwargs}
    torch.testing.assert_close(create_sharded_head(name, 6, 5, sample_rate=0.5, seed=7, **kwargs).weight, head.weight)


def test_sharded_stats_head_gets_the_stats_and_records_them():
    stats = ClassStats(np.array([3, 1, 25]))
    head = build_sharded_head("test-stats-head", 4, 3, class_stats=stats, seed=1)
    assert RECEIVED["sharded"]["class_stats"] is stats and isinstance(head, ShardedMarginHead)
    assert spec_of(head) == {"name": "test-stats-head", "embedding_size": 4, "num_classes": 3, "kwargs": {},
                             "class_stats": stats.to_dict()}
    with pytest.raises(ValueError, match="needs the training set's class statistics"):
        build_sharded_head("test-stats-head", 4, 3)
    assert "class_stats" not in spec_of(build_sharded_head("softmax", 4, 3, class_stats=stats))
