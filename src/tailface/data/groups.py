"""Long-tail groups by images per class (paper, Table 1): A >= 21, B 10-20, C 4-9, D 1-3.

Head = A + B, tail = C + D. Thresholds are configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupThresholds:
    """Lower bounds (inclusive) of groups A, B, C; group D is everything below ``c``."""

    a: int = 21
    b: int = 10
    c: int = 4

    def __post_init__(self):
        if not (self.a > self.b > self.c >= 1):
            raise ValueError(f"group thresholds must satisfy a > b > c >= 1, got {self}")

    def ranges(self) -> dict[str, tuple[int, float]]:
        """Group name -> inclusive [low, high] images per class."""
        return {"A": (self.a, np.inf), "B": (self.b, self.a - 1), "C": (self.c, self.b - 1), "D": (1, self.c - 1)}


GROUPS = ("A", "B", "C", "D")
HEAD_GROUPS = ("A", "B")
TAIL_GROUPS = ("C", "D")


def group_of_counts(counts: np.ndarray, thresholds: GroupThresholds = GroupThresholds()) -> np.ndarray:
    """Group letter ('A'..'D') of each class, from its image count."""
    counts = np.asarray(counts)
    out = np.full(counts.shape, "D", dtype="<U1")
    out[counts >= thresholds.c] = "C"
    out[counts >= thresholds.b] = "B"
    out[counts >= thresholds.a] = "A"
    return out


def head_tail_split(counts: np.ndarray, thresholds: GroupThresholds = GroupThresholds()):
    """(head class ids, tail class ids), each sorted ascending."""
    groups = group_of_counts(counts, thresholds)
    head = np.flatnonzero(np.isin(groups, HEAD_GROUPS))
    tail = np.flatnonzero(np.isin(groups, TAIL_GROUPS))
    return head, tail
