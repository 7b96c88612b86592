"""Decision thresholds at a false accept rate, with the semantics of the BLUFR MATLAB toolkit.

Given ``n`` impostor scores and a FAR point ``f``:

* ``k = round(f * n)`` false alarms, rounded half away from zero (MATLAB ``round``);
* ``0 < k < n``: the threshold is the ``k``-th largest impostor score and a score is accepted when
  ``score >= threshold`` (so with ties at the threshold more than ``k`` impostors may pass);
* ``k == 0``: accept only scores strictly greater than the largest impostor score (the toolkit's
  threshold is the midpoint between the largest impostor and the smallest genuine score above it,
  or the largest impostor plus a tiny epsilon when there is none: the same decisions);
* ``k == n``: accept everything (the toolkit's threshold lies below every score).

The reported FAR of a point is the nominal ``k / n``. Only the ``max k`` largest impostor scores are
ever needed, which is what makes all-pairs verification cheap.
"""

from __future__ import annotations

import numpy as np

from tailface.errors import ProtocolError


def false_alarm_counts(fars, n_impostors: int) -> np.ndarray:
    """``round(far * n_impostors)`` per FAR point, rounding halves away from zero."""
    fars = np.asarray(fars, dtype=np.float64)
    if fars.ndim != 1 or fars.size == 0:
        raise ProtocolError(f"FAR points must be a non-empty 1-D list, got shape {fars.shape}")
    if np.any(~np.isfinite(fars)) or np.any(fars < 0) or np.any(fars > 1):
        raise ProtocolError(f"FAR points must lie in [0, 1], got {fars.tolist()}")
    return np.floor(fars * n_impostors + 0.5).astype(np.int64)


def needed_impostors(counts: np.ndarray, n_impostors: int) -> int:
    """How many of the largest impostor scores :func:`accept_rates` needs (at least one)."""
    inner = counts[counts < n_impostors]
    return int(max(1, inner.max() if inner.size else 1))


def accept_rates(top_impostors: np.ndarray, n_impostors: int, counts: np.ndarray,
                 genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rates, thresholds)``: the fraction of ``genuine`` scores accepted at each false-alarm
    count, with ``top_impostors`` the largest impostor scores in descending order (at least
    :func:`needed_impostors` of them)."""
    if n_impostors <= 0:
        raise ProtocolError("no impostor scores: FAR thresholds are undefined")
    genuine = np.sort(np.asarray(genuine))
    n_gen = len(genuine)
    if n_gen == 0:
        raise ProtocolError("no genuine scores: acceptance rates are undefined")
    need = needed_impostors(counts, n_impostors)
    if len(top_impostors) < need:
        raise ValueError(f"{len(top_impostors)} top impostor scores given, {need} needed")
    highest = top_impostors[0]
    rates = np.empty(len(counts))
    thresholds = np.empty(len(counts))
    for i, k in enumerate(counts):
        if k == 0:
            above = genuine[genuine > highest]
            thresholds[i] = (float(highest) + float(above[0])) / 2 if above.size else np.nextafter(
                float(highest), np.inf)
            accepted = n_gen - np.searchsorted(genuine, highest, side="right")
        elif k >= n_impostors:
            thresholds[i] = -np.inf
            accepted = n_gen
        else:
            thresholds[i] = top_impostors[k - 1]
            accepted = n_gen - np.searchsorted(genuine, top_impostors[k - 1], side="left")
        rates[i] = accepted / n_gen
    return rates, thresholds


def largest_descending(scores: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` largest values of ``scores`` in descending order, without a full sort."""
    count = min(count, len(scores))
    if count <= 0:
        return scores[:0]
    top = np.partition(scores, len(scores) - count)[len(scores) - count:]
    return np.sort(top)[::-1]
