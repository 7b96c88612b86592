"""Statistics over seeds: mean +- std of a cell, and the paired difference behind a claimed ordering.

A cell is one metric of one model over seeds ``s = 0 .. n-1``. A claim "A > B" is tested on the
paired differences ``d_s = A_s - B_s`` (same seed, same data order where the models share it):
mean ``d``, standard deviation ``sd`` (N - 1), and the two-sided 95% t-interval
``mean +- t_{0.975, n-1} * sd / sqrt(n)``. Verdict: **holds** when the interval lies above 0,
**reversed** when it lies below 0, **within noise** when it contains 0; with a single seed there is
no interval and the verdict is **one seed** (cannot be told from noise); with no paired seed it
is **not run yet**.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

HOLDS, REVERSED, NOISE, ONE_SEED, NO_DATA = "holds", "reversed", "within noise", "one seed", "not run yet"


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else math.nan

    def text(self, scale: float = 100.0, digits: int = 2) -> str:
        """``mean +- std (n)`` in percent by default; ``-`` for an empty cell."""
        if not self.values:
            return "-"
        if self.n == 1:
            return f"{scale * self.mean:.{digits}f} (1 seed)"
        return f"{scale * self.mean:.{digits}f} +- {scale * self.std:.{digits}f} (n={self.n})"


@dataclass(frozen=True)
class PairedDifference:
    n: int
    mean: float
    std: float
    low: float  # 95% interval
    high: float

    @property
    def verdict(self) -> str:
        if self.n == 0:
            return NO_DATA
        if self.n < 2:
            return ONE_SEED
        if self.low > 0:
            return HOLDS
        if self.high < 0:
            return REVERSED
        return NOISE

    def text(self, scale: float = 100.0, digits: int = 2) -> str:
        if self.n == 0:
            return "- (no paired seeds)"
        if self.n == 1:
            return f"{scale * self.mean:+.{digits}f} (1 seed, no interval)"
        return (f"{scale * self.mean:+.{digits}f} [{scale * self.low:+.{digits}f}, {scale * self.high:+.{digits}f}] "
                f"(n={self.n})")


def paired_difference(a: dict[int, float], b: dict[int, float]) -> PairedDifference:
    """``A - B`` over the seeds both have (``{seed: value}``), with its 95% t-interval."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    n = len(d)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(d.mean())
    if n == 1:
        return PairedDifference(1, mean, math.nan, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    half = float(scipy_stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return PairedDifference(n, mean, sd, mean - half, mean + half)


def interval_factor(n: int) -> float:
    """The half-width of the 95% t-interval of a mean over ``n`` paired seeds, in units of the paired
    differences' standard deviation: ``t_{0.975, n-1} / sqrt(n)`` (nan for fewer than 2 seeds). A
    claim "A > B" holds only when its mean difference exceeds this many standard deviations:
    2 seeds 9.0, 3 seeds 2.48, 5 seeds 1.24, 10 seeds 0.72."""
    if n < 2:
        return math.nan
    return float(scipy_stats.t.ppf(0.975, n - 1)) / math.sqrt(n)
