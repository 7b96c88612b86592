"""Verification over every unordered pair of a set (BLUFR semantics, see :mod:`thresholds`).

Scores are float64 dot products of the L2-normalised float32 features (the toolkit works in double;
float64 also makes the scores independent of how the Gram matrix is blocked, which float32 GEMM is
not in its last bits). ``n`` images give ``n (n - 1) / 2`` pairs (47 M for a BLUFR trial), but a FAR
threshold needs only the largest ``round(FAR * n_impostor)`` impostor scores. :class:`PairScores`
makes one blocked pass over the Gram matrix (float64 BLAS, rows sorted by label so that each row's genuine partners
are one contiguous run of columns) and keeps every genuine score plus the impostor scores at or
above a cut-off estimated from a random sample of pairs. Any subset of the images (a BLUFR trial)
is then evaluated from those kept pairs; when the cut-off proves too high for a subset, the pass is
redone with a lower one, so results are always exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailface.errors import ProtocolError
from tailface.eval.thresholds import accept_rates, false_alarm_counts, largest_descending, needed_impostors
from tailface.eval.vectors import l2_normalize

#: FAR points of the verification curve: 0, 1e-8 ... 9e-3 (9 per decade), 1e-2.
VERIFICATION_FARS = np.array([0.0] + [m * 10.0 ** e for e in range(-8, -2) for m in range(1, 10)]
                             + [1e-2])


@dataclass
class VerificationResult:
    fars: np.ndarray          # requested FAR points
    rates: np.ndarray         # verification rate at each point
    thresholds: np.ndarray
    false_alarms: np.ndarray  # round(FAR * n_impostor)
    n_genuine: int
    n_impostor: int

    def at(self, far: float) -> float:
        return float(self.rates[_index_of(self.fars, far)])

    def to_dict(self) -> dict:
        return {"far": self.fars.tolist(), "vr": self.rates.tolist(),
                "threshold": [float(t) for t in self.thresholds],
                "false_alarms": self.false_alarms.tolist(),
                "n_genuine": self.n_genuine, "n_impostor": self.n_impostor}


def _index_of(points: np.ndarray, value: float) -> int:
    hits = np.flatnonzero(np.isclose(points, value, rtol=1e-9, atol=0))
    if not hits.size:
        raise KeyError(f"FAR {value} was not evaluated (points: {points.tolist()})")
    return int(hits[0])


class PairScores:
    """Genuine pair scores and the high impostor pair scores of one feature set."""

    def __init__(self, features, labels, max_far: float, source: str = "features",
                 block: int = 1024, sample_pairs: int = 200_000, seed: int = 0, columns=None):
        """``columns`` (optional indexes): also collect, from the same pass, the full score matrix
        of every image against those images as ``self.column_scores`` (N x len(columns))."""
        self.x = l2_normalize(features, source)
        self.labels = np.asarray(labels).astype(np.int64, copy=False)
        if self.labels.shape != (len(self.x),):
            raise ProtocolError(f"{source}: {len(self.labels)} labels for {len(self.x)} feature rows")
        self.source = source
        self.block = block
        self._order = np.argsort(self.labels, kind="stable")
        sorted_labels = self.labels[self._order]
        starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        ends = np.r_[starts[1:], len(sorted_labels)]
        self._run_end = np.repeat(ends, ends - starts)  # end of each sorted row's label run
        self._fraction = min(1.0, 2.0 * max_far + 1e-4)
        self._sample = self._impostor_sample(sample_pairs, seed)
        self._columns: np.ndarray | None = None if columns is None else np.asarray(columns, dtype=np.int64)
        self.column_scores: np.ndarray | None = None
        self._build_candidates()

    # -- the blocked pass ---------------------------------------------------------------------

    def _impostor_sample(self, n: int, seed: int) -> np.ndarray:
        """Impostor scores among a random subset of about sqrt(2 n) images (one small GEMM)."""
        rng = np.random.default_rng(seed)
        m = min(len(self.x), int(np.sqrt(2 * n)) + 1)
        pick = np.sort(rng.choice(len(self.x), size=m, replace=False))
        xp = self.x[pick].astype(np.float64)
        s = xp @ xp.T
        i, j = np.triu_indices(m, 1)
        keep = self.labels[pick][i] != self.labels[pick][j]
        return s[i[keep], j[keep]]

    def _cut(self) -> float:
        if self._fraction >= 1.0 or len(self._sample) == 0:
            return -np.inf
        return float(np.quantile(self._sample, 1.0 - self._fraction))

    def _build_candidates(self) -> None:
        """One blocked pass: every genuine pair, and the impostor pairs scoring >= the cut."""
        cut = self._cut()
        xs = self.x[self._order].astype(np.float64)
        n = len(xs)
        rows, cols, vals = [], [], []
        g_rows, g_cols, g_vals = [], [], []
        collect = self._columns is not None and self.column_scores is None
        if collect:  # sorted position of each wanted column, and its slot in column_scores
            assert self._columns is not None
            position = np.empty(n, np.int64)
            position[self._order] = np.arange(n)
            col_pos = position[self._columns]
            self.column_scores = np.empty((n, len(self._columns)))
        for r0 in range(0, n, self.block):
            r1 = min(n, r0 + self.block)
            s = xs[r0:r1] @ xs[r0:].T
            if collect:  # pair (a, b) with pos(a) <= pos(b) is computed in a's block only
                assert self.column_scores is not None
                ahead = np.flatnonzero(col_pos >= r0)
                self.column_scores[np.ix_(self._order[r0:r1], ahead)] = s[:, col_pos[ahead] - r0]
                here = np.flatnonzero((col_pos >= r0) & (col_pos < r1))
                self.column_scores[np.ix_(self._order[r0:], here)] = s[col_pos[here] - r0, :].T
            for r in range(r0, r1):
                end = self._run_end[r] - r0
                if end > r - r0 + 1:  # genuine partners of row r: columns r+1 .. end-1
                    g_vals.append(s[r - r0, r - r0 + 1: end].copy())
                    g_rows.append(np.full(end - (r - r0) - 1, r, dtype=np.int32))
                    g_cols.append(np.arange(r + 1, end + r0, dtype=np.int32))
                s[r - r0, :end] = -np.inf  # hide the lower triangle, the diagonal and genuine pairs
            flat = np.flatnonzero(s >= cut) if np.isfinite(cut) else np.flatnonzero(s > -np.inf)
            width = n - r0
            rows.append((flat // width + r0).astype(np.int32))
            cols.append((flat % width + r0).astype(np.int32))
            vals.append(s.ravel()[flat])
        order = self._order.astype(np.int32)
        self._cand = (order[np.concatenate(rows)], order[np.concatenate(cols)], np.concatenate(vals))
        if g_vals:
            self._genuine = (order[np.concatenate(g_rows)], order[np.concatenate(g_cols)],
                             np.concatenate(g_vals))
        else:
            self._genuine = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float64))

    # -- evaluation of a subset ---------------------------------------------------------------

    def evaluate(self, subset=None, fars=VERIFICATION_FARS) -> VerificationResult:
        """Verification over all pairs of ``subset`` (indexes into the features; all when None)."""
        member = np.zeros(len(self.x), dtype=bool)
        member[np.arange(len(self.x)) if subset is None else np.asarray(subset)] = True
        m = int(member.sum())
        gi, gj, gv = self._genuine
        genuine = gv[member[gi] & member[gj]]
        n_imp = m * (m - 1) // 2 - len(genuine)
        fars = np.asarray(fars, dtype=np.float64)
        counts = false_alarm_counts(fars, n_imp)
        if n_imp <= 0 or len(genuine) == 0:
            raise ProtocolError(f"{self.source}: {len(genuine)} genuine and {n_imp} impostor pairs; "
                                "verification needs both")
        need = needed_impostors(counts, n_imp)
        while True:
            ci, cj, cv = self._cand
            kept = cv[member[ci] & member[cj]]
            if len(kept) >= need:
                break
            if self._fraction >= 1.0:
                raise AssertionError("all impostor pairs kept yet too few")  # cannot happen
            self._fraction = min(1.0, self._fraction * 4)
            self._build_candidates()
        rates, thresholds = accept_rates(largest_descending(kept, need), n_imp, counts, genuine)
        return VerificationResult(fars, rates, thresholds, counts, len(genuine), n_imp)


def verification_rates(features, labels, fars=VERIFICATION_FARS,
                       source: str = "features") -> VerificationResult:
    """Verification rate at each FAR over all unordered pairs of ``features`` (genuine = same
    label), features L2-normalised, score = dot product."""
    fars = np.asarray(fars, dtype=np.float64)
    inner = fars[fars < 1]
    return PairScores(features, labels, float(inner.max()) if inner.size else 0.0,
                      source).evaluate(None, fars)
