"""Progress across the cells of one ``tailface reproduce`` / ``tailface study`` invocation.

``cell 3 of 8 (sweep-C50 seed 0): started; 2 finished in 4.1 min, about 8.2 min left (ETA 14:05)``.

Each cell to train has a weight: its estimated seconds when the caller has an estimate
(``tailface study``'s plan: :mod:`tailface.evidence.cost`), else 1. The time left is the weight of
the cells not finished times the seconds per unit of weight measured so far (the wall time since
the first cell started over the weight of the finished cells), so an estimate that was off is
corrected as cells finish; before any cell has finished it is the estimate itself (none without
one). With ``--jobs N`` the wall time already counts the cells run side by side.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Cell = tuple[str, int]  # (model, seed)


def duration(seconds: float) -> str:
    """``42 s``, ``7.5 min``, ``3 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, rest = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {rest:02d} min"


class CellProgress:
    """Says ``cell k of n`` with the time left as each cell of ``cells`` starts and finishes.
    ``estimate``: seconds per cell (None: no estimate, every cell weighs the same); ``jobs``: cells
    at once (the estimate's wall time is its sum over ``jobs``); ``say(cell label, message)``."""

    def __init__(self, cells: list[Cell], say: Callable[[str, str], None], estimate: dict[Cell, float] | None = None,
                 jobs: int = 1, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time):
        self.cells = list(cells)
        self.say = say
        self.estimated = estimate is not None
        self.weight = {c: float(estimate[c]) if estimate is not None else 1.0 for c in self.cells}
        self.jobs = max(1, jobs)
        self.clock, self.wall_clock = clock, wall_clock
        self.start: float | None = None
        self.began: dict[Cell, float] = {}
        self.done: list[Cell] = []

    def position(self, cell: Cell) -> str:
        return f"cell {self.cells.index(cell) + 1} of {len(self.cells)}"

    def left(self) -> float | None:
        """Seconds left (None: no estimate and no cell finished yet)."""
        remaining = sum(w for c, w in self.weight.items() if c not in self.done)
        finished = sum(self.weight[c] for c in self.done)
        if finished > 0 and self.start is not None:
            return remaining * (self.clock() - self.start) / finished
        return remaining / self.jobs if self.estimated else None

    def outlook(self) -> str:
        left = self.left()
        if left is None:
            return "time left: known once a cell has finished"
        eta = time.strftime("%H:%M", time.localtime(self.wall_clock() + left))
        return f"about {duration(left)} left (ETA {eta})"

    def started(self, cell: Cell) -> None:
        now = self.clock()
        self.start = now if self.start is None else self.start
        self.began[cell] = now
        self.say(f"{cell[0]} seed {cell[1]}", f"{self.position(cell)}: started; {self.outlook()}")

    def finished(self, cell: Cell) -> None:
        took = self.clock() - self.began.get(cell, self.clock())
        self.done.append(cell)
        tail = "all cells trained" if len(self.done) == len(self.cells) else self.outlook()
        self.say(f"{cell[0]} seed {cell[1]}", f"{self.position(cell)}: finished in {duration(took)}; "
                                              f"{len(self.done)} of {len(self.cells)} done, {tail}")
