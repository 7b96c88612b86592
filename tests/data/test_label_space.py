"""``ClassStats`` (data/label_space.py): counts, groups, head/tail and prior, counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tailface.data.faceset import InMemoryFaceSet
from tailface.data.groups import GroupThresholds
from tailface.data.label_space import ClassStats


def test_counts_groups_split_and_prior_by_hand():
    # class 0: 25 images (A), 1: 10 (B), 2: 9 (C), 3: 4 (C), 4: 3 (D), 5: 0 (D)
    labels = np.repeat(np.arange(5), [25, 10, 9, 4, 3])
    stats = ClassStats.from_labels(labels, num_classes=6)
    assert stats.counts.dtype == np.int64 and stats.counts.tolist() == [25, 10, 9, 4, 3, 0]
    assert stats.num_classes == 6
    assert stats.groups.tolist() == ["A", "B", "C", "C", "D", "D"]
    assert stats.head.tolist() == [True, True, False, False, False, False]
    assert stats.tail.tolist() == [False, False, True, True, True, True]
    assert stats.prior().dtype == np.float64
    np.testing.assert_array_equal(stats.prior(), np.array([25, 10, 9, 4, 3, 0]) / 51)


def test_thresholds_move_the_groups():
    stats = ClassStats(np.array([5, 3, 2, 1]), GroupThresholds(a=5, b=3, c=2))
    assert stats.groups.tolist() == ["A", "B", "C", "D"]
    assert stats.head.tolist() == [True, True, False, False]


def test_from_faceset_and_from_labels():
    faces = InMemoryFaceSet(np.zeros((5, 2, 2, 3), np.uint8), np.array([2, 0, 2, 1, 2]), class_names=["a", "b", "c"])
    assert ClassStats.from_faceset(faces, GroupThresholds(a=3, b=2, c=1)).groups.tolist() == ["C", "C", "A"]
    assert ClassStats.from_faceset(faces).counts.tolist() == [1, 1, 3]
    assert ClassStats.from_labels([0, 2, 2]).counts.tolist() == [1, 0, 2]


def test_dict_round_trip_is_plain_and_equal():
    stats = ClassStats(np.array([30, 1, 7]), GroupThresholds(a=20, b=8, c=2))
    d = stats.to_dict()
    assert d == {"counts": [30, 1, 7], "thresholds": {"a": 20, "b": 8, "c": 2}}
    assert all(type(n) is int for n in d["counts"])
    assert ClassStats.from_dict(d) == stats
    assert ClassStats.from_dict({"counts": [1, 2]}) == ClassStats(np.array([1, 2]))
    assert stats != ClassStats(np.array([30, 1, 8]), stats.thresholds)


def test_placeholder_and_immutability():
    stats = ClassStats.placeholder(3)
    assert stats.counts.tolist() == [1, 1, 1] and stats.groups.tolist() == ["D"] * 3
    source = np.array([4, 5])
    kept = ClassStats(source)
    source[0] = 99  # the caller's array is copied
    assert kept.counts.tolist() == [4, 5]
    with pytest.raises(ValueError):
        kept.counts[0] = 1


@pytest.mark.parametrize("bad", [np.array([]), np.array([[1, 2]]), np.array([1.5, 2.0]), np.array([3, -1])])
def test_bad_counts_are_refused(bad):
    with pytest.raises(ValueError, match="class counts"):
        ClassStats(bad)


@pytest.mark.parametrize("bad, match", [({"counts": "1,2"}, "list 'counts'"), ({"counts": []}, "integers"),
                                         ({"counts": [1], "extra": 1}, "unknown key 'extra'"),
                                         ({"counts": [1], "thresholds": {"d": 1}}, "thresholds")])
def test_bad_dicts_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        ClassStats.from_dict(bad)


def test_bad_labels_and_empty_prior():
    with pytest.raises(ValueError, match="out of range"):
        ClassStats.from_labels([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="non-negative"):
        ClassStats.from_labels([0, -1])
    with pytest.raises(ValueError, match="without images"):
        ClassStats(np.zeros(2, np.int64)).prior()
