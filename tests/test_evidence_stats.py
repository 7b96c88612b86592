"""The statistics of `tailface reproduce` / `study` on hand-made numbers."""

import math

import pytest

from tailface.evidence.stats import HOLDS, NO_DATA, NOISE, ONE_SEED, REVERSED, Cell, paired_difference


def test_cell_mean_std_text():
    c = Cell((0.20, 0.22, 0.24))
    assert c.mean == pytest.approx(0.22) and c.std == pytest.approx(0.02)
    assert c.text() == "22.00 +- 2.00 (n=3)"
    assert Cell((0.5,)).text() == "50.00 (1 seed)" and math.isnan(Cell((0.5,)).std)
    assert Cell(()).text() == "-"


def test_paired_difference_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302653, half width 4.302653 / sqrt(3) = 2.484138
    d = paired_difference({0: 11.0, 1: 12.0, 2: 13.0, 7: 99.0}, {0: 10.0, 1: 10.0, 2: 10.0})
    assert d.n == 3 and d.mean == pytest.approx(2.0) and d.std == pytest.approx(1.0)
    assert d.low == pytest.approx(2 - 2.484138, abs=1e-6) and d.high == pytest.approx(2 + 2.484138, abs=1e-6)
    assert d.verdict == NOISE  # the interval [-0.48, 4.48] contains 0


def test_verdicts():
    assert paired_difference({0: 3.0, 1: 3.1, 2: 2.9}, {0: 1.0, 1: 1.0, 2: 1.0}).verdict == HOLDS
    assert paired_difference({0: 1.0, 1: 1.0, 2: 1.0}, {0: 3.0, 1: 3.1, 2: 2.9}).verdict == REVERSED
    assert paired_difference({0: 2.0}, {0: 1.0}).verdict == ONE_SEED
    assert paired_difference({0: 2.0}, {1: 1.0}).verdict == NO_DATA  # no seed in common
    assert paired_difference({0: 2.0}, {1: 1.0}).n == 0
    assert paired_difference({0: 2.0, 1: 2.0}, {0: 1.0, 1: 1.0}).verdict == HOLDS  # sd 0: a point interval
