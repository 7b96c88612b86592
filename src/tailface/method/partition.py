"""Head/tail partition of a training set and the label spaces of the method's stages.

Label spaces (class ids of the original set are ``0 .. N-1``):

- base (AB): head classes ``0 .. N_h-1`` in ascending original id; tail images are not used;
- prototype: head classes ``0 .. N_h-1``, super classes ``N_h .. N_h+N_k-1``;
- dispersion: head classes ``0 .. N_h-1``, tail classes ``N_h .. N_h+N_t-1`` (ascending id).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.groups import GroupThresholds, group_of_counts
from tailface.errors import ConfigError, DataError


@dataclass
class Partition:
    counts: np.ndarray  # images per original class
    groups: np.ndarray  # 'A'..'D' per original class
    head: np.ndarray  # original ids of head classes (A+B), ascending
    tail: np.ndarray  # original ids of tail classes (C+D), ascending
    source: str = "<faceset>"

    @classmethod
    def from_faceset(cls, faceset: FaceSet, thresholds: GroupThresholds = GroupThresholds()) -> Partition:
        counts = faceset.class_counts()
        groups = group_of_counts(counts, thresholds)
        part = cls(counts, groups, np.flatnonzero(np.isin(groups, ("A", "B"))),
                   np.flatnonzero(np.isin(groups, ("C", "D"))), faceset.source)
        if len(part.head) == 0:
            raise DataError(f"{faceset.source}: no head class (>= {thresholds.b} images) under "
                            f"thresholds {thresholds}; the method needs head classes for the base model")
        if len(part.tail) == 0:
            raise DataError(f"{faceset.source}: no tail class (< {thresholds.b} images) under "
                            f"thresholds {thresholds}; there is nothing to aggregate")
        return part

    @property
    def num_head(self) -> int:
        return len(self.head)

    @property
    def num_tail(self) -> int:
        return len(self.tail)

    def tail_group(self) -> np.ndarray:
        """'C' or 'D' for every tail class (in tail order)."""
        return self.groups[self.tail]

    def head_images(self) -> int:
        return int(self.counts[self.head].sum())

    def tail_images(self) -> int:
        return int(self.counts[self.tail].sum())

    def dispersion_label_of_class(self) -> np.ndarray:
        """Original class id -> dispersion label (head first, then tail)."""
        out = np.empty(len(self.counts), dtype=np.int64)
        out[self.head] = np.arange(self.num_head)
        out[self.tail] = self.num_head + np.arange(self.num_tail)
        return out

    def prototype_label_of_class(self, super_of_tail: np.ndarray) -> np.ndarray:
        """Original class id -> prototype label (head classes, then super classes)."""
        out = np.empty(len(self.counts), dtype=np.int64)
        out[self.head] = np.arange(self.num_head)
        out[self.tail] = self.num_head + np.asarray(super_of_tail, dtype=np.int64)
        return out


def group_table(part: Partition) -> str:
    """Markdown table: classes and images per group A-D."""
    lines = ["| group | images/class | classes | images |", "|---|---|---:|---:|"]
    for g in "ABCD":
        sel = part.groups == g
        counts = part.counts[sel]
        span = f"{counts.min()}-{counts.max()}" if len(counts) else "-"
        lines.append(f"| {g} | {span} | {int(sel.sum())} | {int(counts.sum())} |")
    return "\n".join(lines)


def thresholds_from_config(block: dict | None) -> GroupThresholds:
    """``data.groups`` config block (``a``, ``b``, ``c``) -> thresholds, as a ConfigError if bad."""
    block = dict(block or {})
    unknown = set(block) - {"a", "b", "c"}
    if unknown:
        raise ConfigError(f"data.groups: unknown keys {sorted(unknown)} (expected a, b, c)")
    try:
        return GroupThresholds(**{k: int(v) for k, v in block.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data.groups: {exc}") from None
