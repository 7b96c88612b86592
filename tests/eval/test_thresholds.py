import numpy as np
import pytest

from tailface.errors import ProtocolError
from tailface.eval.thresholds import accept_rates, false_alarm_counts, largest_descending

IMPOSTOR = np.array([0.9, 0.8, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], np.float32)
GENUINE = np.array([0.95, 0.85, 0.8, 0.75, 0.6], np.float32)


def rates(fars, genuine=GENUINE):
    counts = false_alarm_counts(fars, len(IMPOSTOR))
    return accept_rates(IMPOSTOR, len(IMPOSTOR), counts, genuine)


def test_counts_round_half_away_from_zero():
    # 0.45 * 10 = 4.5 -> 5 (numpy's round would give 4), 0.25 * 10 = 2.5 -> 3
    assert false_alarm_counts([0, 0.04, 0.05, 0.25, 0.45, 1], 10).tolist() == [0, 0, 1, 3, 5, 10]


def test_rates_by_hand():
    r, t = rates([0.0, 0.1, 0.2, 0.3, 0.45, 1.0])
    # FAR 0: only genuine > 0.9 -> 0.95 ; k=1: >= 0.9 -> 0.95 ; k=2 and k=3: threshold 0.8 (tie),
    # accepted 0.95, 0.85, 0.8 ; k=5: threshold 0.5 -> all ; FAR 1 -> all
    np.testing.assert_allclose(r, [0.2, 0.2, 0.6, 0.6, 1.0, 1.0])
    assert t[1] == np.float32(0.9) and t[2] == np.float32(0.8) and t[4] == np.float32(0.5)
    assert t[0] == pytest.approx((0.9 + 0.95) / 2)  # the toolkit's midpoint
    assert t[-1] == -np.inf


def test_zero_far_without_genuine_above():
    r, t = rates([0.0], np.array([0.9, 0.5], np.float32))  # 0.9 ties the top impostor: rejected
    assert r[0] == 0.0 and t[0] > np.float32(0.9)


def test_bad_far_points():
    with pytest.raises(ProtocolError, match=r"\[0, 1\]"):
        false_alarm_counts([0.1, 1.5], 10)
    with pytest.raises(ProtocolError):
        false_alarm_counts([np.nan], 10)


def test_no_impostors():
    with pytest.raises(ProtocolError, match="impostor"):
        accept_rates(IMPOSTOR[:0], 0, np.array([0]), GENUINE)


def test_largest_descending():
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6], np.float32)
    assert largest_descending(x, 3).tolist() == [9, 6, 5]
    assert largest_descending(x, 100).tolist() == sorted(x.tolist(), reverse=True)
