"""``ClassStats``: the label space of a training set, as the heads that ask for it see it.

``counts[c]`` is the number of training images of class ``c`` (index = the class label of the
*training* set a head is built for, after any relabelling); the groups A-D and the head/tail split
follow from the counts and the thresholds (:mod:`tailface.data.groups`):

    group(c) = A if n_c >= a, B if b <= n_c < a, C if c <= n_c < b, D otherwise
    head = groups A and B, tail = groups C and D
    prior(c) = n_c / sum_k n_k

A class-count-aware head registered with ``needs_class_stats=True``
(:func:`tailface.heads.base.register_head`) receives one as its keyword ``class_stats``. It is pure
data: ``to_dict`` / ``from_dict`` turn it into plain lists and ints (checkpoint metadata) and back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.groups import HEAD_GROUPS, GroupThresholds, group_of_counts


@dataclass(frozen=True, eq=False)
class ClassStats:
    """Images per class of a training set (int64, read-only) and the group thresholds."""

    counts: np.ndarray
    thresholds: GroupThresholds = GroupThresholds()

    def __post_init__(self):
        raw = np.asarray(self.counts)
        if raw.ndim != 1 or not len(raw):
            raise ValueError(f"class counts must be a non-empty 1-D array, got shape {raw.shape}")
        if raw.dtype.kind not in "iu" or (raw < 0).any():
            raise ValueError("class counts must be non-negative integers")
        counts = raw.astype(np.int64)  # a copy: the caller's array may change, ours may not
        counts.flags.writeable = False
        object.__setattr__(self, "counts", counts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassStats):
            return NotImplemented
        return self.thresholds == other.thresholds and np.array_equal(self.counts, other.counts)

    __hash__ = None  # type: ignore[assignment]  # (mutable-looking array field: not hashable)

    @property
    def num_classes(self) -> int:
        return len(self.counts)

    @property
    def groups(self) -> np.ndarray:
        """Group letter 'A'..'D' of each class."""
        return group_of_counts(self.counts, self.thresholds)

    @property
    def head(self) -> np.ndarray:
        """Bool mask of the head classes (groups A and B)."""
        return np.isin(self.groups, HEAD_GROUPS)

    @property
    def tail(self) -> np.ndarray:
        """Bool mask of the tail classes (groups C and D)."""
        return ~self.head

    def prior(self) -> np.ndarray:
        """Float64 ``counts / counts.sum()``."""
        total = int(self.counts.sum())
        if total == 0:
            raise ValueError("class prior of a label space without images")
        return self.counts.astype(np.float64) / total

    @classmethod
    def from_labels(cls, labels, num_classes: int | None = None,
                    thresholds: GroupThresholds = GroupThresholds()) -> ClassStats:
        """Counts of integer ``labels`` in ``[0, num_classes)`` (default: ``max + 1``)."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or (len(labels) and (labels.dtype.kind not in "iu" or labels.min() < 0)):
            raise ValueError("labels must be a 1-D array of non-negative integers")
        size = int(labels.max()) + 1 if len(labels) else 0
        if num_classes is not None:
            if size > num_classes:
                raise ValueError(f"label {size - 1} out of range for {num_classes} classes")
            size = int(num_classes)
        return cls(np.bincount(labels.astype(np.int64), minlength=size), thresholds)

    @classmethod
    def from_faceset(cls, faceset: FaceSet, thresholds: GroupThresholds = GroupThresholds()) -> ClassStats:
        """The label space of ``faceset`` (``faceset.class_counts()``, every class it names)."""
        return cls(faceset.class_counts(), thresholds)

    @classmethod
    def placeholder(cls, num_classes: int) -> ClassStats:
        """One image per class: for building a head only to check its arguments."""
        return cls(np.ones(num_classes, dtype=np.int64))

    def to_dict(self) -> dict:
        """Plain types: ``{"counts": [int, ...], "thresholds": {"a": int, "b": int, "c": int}}``."""
        return {"counts": [int(n) for n in self.counts], "thresholds": dataclasses.asdict(self.thresholds)}

    @classmethod
    def from_dict(cls, d: dict) -> ClassStats:
        """Inverse of :meth:`to_dict`; ValueError naming what is wrong."""
        if not isinstance(d, dict) or not isinstance(d.get("counts"), list):
            raise ValueError("class_stats: expected a mapping with a list 'counts'")
        unknown = sorted(set(d) - {"counts", "thresholds"})
        if unknown:
            raise ValueError(f"class_stats: unknown key {unknown[0]!r}")
        try:
            thresholds = GroupThresholds(**d.get("thresholds", {}))
        except TypeError as exc:
            raise ValueError(f"class_stats.thresholds: {exc}") from None
        counts = np.asarray(d["counts"])
        if counts.dtype.kind not in "iu":  # (also an empty list: float64)
            raise ValueError("class_stats.counts: expected a non-empty list of integers")
        return cls(counts, thresholds)
