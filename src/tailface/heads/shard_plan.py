"""Which rank holds which classifier rows: the shard plan of a class-sharded head.

A plan lays the ``C`` classes out in a *storage order*: rank ``r`` holds storage positions
``bounds[r] .. bounds[r + 1] - 1`` as its local rows ``0 .. rows(r) - 1``. ``order[p]`` is the
global class at storage position ``p`` (``None``: the identity, so every rank owns a contiguous
range of class ids).

- :meth:`ShardPlan.contiguous`: plain heads (softmax, CosFace, ArcFace); ``C // W`` rows per
  rank, the first ``C % W`` ranks one more.
- :meth:`ShardPlan.dispersion`: the dispersion head (head classes ``0 .. N_h - 1``, tail classes
  ``N_h + i`` in super class ``super_of_tail[i]``). A super class is never split: it goes whole,
  with all its member rows, to one rank (largest first, each to the rank with the fewest rows),
  then the head classes top the ranks up (contiguous ranges of head ids, in rank order) so that
  the row counts are as equal as the super-class sizes allow. A rank's local rows are its head
  classes (ascending), then its super classes (ascending global id), each with its members
  (ascending); its local super classes are numbered ``0 ..`` in that order.

The plan depends on the world size; checkpoints should hold the classifier in global class order
(see ``tailface.heads.sharded.gather_full_weight``), which does not.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class LocalDispersion:
    """The dispersion structure of one rank's rows (local indices throughout)."""

    num_head: int  # local head rows come first
    super_of_tail: np.ndarray  # local super class of each local tail row (local row num_head + i)
    global_super: np.ndarray  # global id of each local super class

    @property
    def num_super(self) -> int:
        return len(self.global_super)


@dataclass(frozen=True, eq=False)
class ShardPlan:
    num_classes: int
    world_size: int
    bounds: np.ndarray  # W + 1 storage offsets
    order: np.ndarray | None = None  # storage position -> global class (None: identity)
    num_head: int | None = None  # dispersion plans only
    super_of_tail: np.ndarray | None = None  # global super class of each tail class
    super_rank: np.ndarray | None = None  # rank holding each global super class
    _position: np.ndarray | None = field(default=None, repr=False)

    # construction ------------------------------------------------------------------------------
    @classmethod
    def contiguous(cls, num_classes: int, world_size: int) -> ShardPlan:
        num_classes, world_size = int(num_classes), int(world_size)
        if num_classes < 1 or world_size < 1:
            raise ValueError(f"a shard plan needs num_classes >= 1 and world_size >= 1, got {num_classes}, "
                             f"{world_size}")
        base, extra = divmod(num_classes, world_size)
        rows = np.full(world_size, base, dtype=np.int64)
        rows[:extra] += 1
        return cls(num_classes, world_size, np.concatenate([[0], np.cumsum(rows)]))

    @classmethod
    def dispersion(cls, num_head: int, super_of_tail, world_size: int) -> ShardPlan:
        num_head, world_size = int(num_head), int(world_size)
        super_of_tail = np.asarray(super_of_tail, dtype=np.int64)
        if num_head < 0 or world_size < 1 or super_of_tail.ndim != 1 or len(super_of_tail) == 0:
            raise ValueError("a dispersion shard plan needs num_head >= 0, world_size >= 1 and a non-empty "
                             "1-d super_of_tail")
        sizes = np.bincount(super_of_tail)
        if super_of_tail.min() < 0 or (sizes == 0).any():
            raise ValueError(f"super classes must be 0..{len(sizes) - 1}, each with at least one tail class")
        # super classes: largest first, each to the rank with the fewest rows (ties: lowest rank)
        super_rank = np.empty(len(sizes), dtype=np.int64)
        heap = [(0, r) for r in range(world_size)]
        for g in np.lexsort((np.arange(len(sizes)), -sizes)):
            load, r = heapq.heappop(heap)
            super_rank[g] = r
            heapq.heappush(heap, (load + int(sizes[g]), r))
        loads = np.bincount(super_rank, weights=sizes, minlength=world_size).astype(np.int64)
        heads = _water_fill(loads, num_head)
        # storage order: per rank, its head range, then its super classes with their members
        head_start = np.concatenate([[0], np.cumsum(heads)])
        by_super = np.argsort(super_of_tail, kind="stable")  # tail indices grouped by super class
        starts = np.concatenate([[0], np.cumsum(sizes)])
        pieces: list[np.ndarray] = []
        bounds = [0]
        for r in range(world_size):
            mine = np.flatnonzero(super_rank == r)
            tails = [by_super[starts[g]:starts[g + 1]] for g in mine]
            pieces.append(np.arange(head_start[r], head_start[r + 1]))
            pieces.extend(num_head + t for t in tails)
            bounds.append(bounds[-1] + int(heads[r]) + int(sizes[mine].sum()))
        order = np.concatenate(pieces).astype(np.int64)
        return cls(num_head + len(super_of_tail), world_size, np.asarray(bounds, dtype=np.int64), order,
                   num_head, super_of_tail, super_rank)

    # queries -----------------------------------------------------------------------------------
    def rows(self, rank: int) -> int:
        return int(self.bounds[rank + 1] - self.bounds[rank])

    @property
    def row_counts(self) -> np.ndarray:
        return np.diff(self.bounds)

    @property
    def position(self) -> np.ndarray:
        """Storage position of every global class (inverse of ``order``; the identity without one)."""
        if self.order is None:
            return np.arange(self.num_classes, dtype=np.int64)
        if self._position is None:
            pos = np.empty(self.num_classes, dtype=np.int64)
            pos[self.order] = np.arange(self.num_classes)
            object.__setattr__(self, "_position", pos)
            return pos
        return self._position

    def classes(self, rank: int) -> np.ndarray:
        """Global class of each local row of ``rank``."""
        lo, hi = int(self.bounds[rank]), int(self.bounds[rank + 1])
        return np.arange(lo, hi, dtype=np.int64) if self.order is None else self.order[lo:hi]

    def locate(self, classes) -> tuple[np.ndarray, np.ndarray]:
        """``(rank, local_row)`` of global ``classes``."""
        classes = np.asarray(classes, dtype=np.int64)
        if classes.size and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise ValueError(f"classes must lie in [0, {self.num_classes})")
        pos = self.position[classes]
        rank = np.searchsorted(self.bounds, pos, side="right") - 1
        return rank, pos - self.bounds[rank]

    def global_class(self, rank, local_row) -> np.ndarray:
        """Global class of ``local_row`` on ``rank`` (arrays broadcast)."""
        rank, local_row = np.asarray(rank, dtype=np.int64), np.asarray(local_row, dtype=np.int64)
        if ((local_row < 0) | (local_row >= self.row_counts[rank])).any():
            raise ValueError("local row out of range for its rank")
        pos = self.bounds[rank] + local_row
        return pos if self.order is None else self.order[pos]

    def local_dispersion(self, rank: int) -> LocalDispersion:
        if self.super_of_tail is None:
            raise ValueError("not a dispersion shard plan")
        classes = self.classes(rank)
        num_head = int((classes < self.num_head).sum())
        tail_super = self.super_of_tail[classes[num_head:] - self.num_head]
        global_super, local_super = np.unique(tail_super, return_inverse=True)
        return LocalDispersion(num_head, local_super.astype(np.int64), global_super.astype(np.int64))


def _water_fill(loads: np.ndarray, total: int) -> np.ndarray:
    """Non-negative integers summing to ``total`` that make ``loads + share`` as level as possible
    (the lowest ranks first; remainders to the lowest rank indices)."""
    share = np.zeros(len(loads), dtype=np.int64)
    if total <= 0:
        return share
    lo, hi = int(loads.min()), int(loads.max()) + total  # smallest level L with fill(L) >= total
    while lo < hi:
        mid = (lo + hi) // 2
        if np.maximum(mid - loads, 0).sum() >= total:
            hi = mid
        else:
            lo = mid + 1
    level = lo
    share = np.maximum(level - 1 - loads, 0)
    rest = total - int(share.sum())
    topped = np.flatnonzero(loads + share == level - 1)[:rest]
    share[topped] += 1
    return share
