"""Open-set identification (BLUFR semantics, the toolkit's ``OpenSetROC``).

Probes whose label appears in the gallery are *genuine* probes, the others *impostor* probes.
An impostor probe's score is its maximum over the gallery; thresholds come from those scores with
the FAR rule of :mod:`tailface.eval.thresholds` (FAR = fraction of impostor probes accepted). A
genuine probe's *mate score* is its best score over the gallery images of its own identity, and its
rank is that mate's position when the probe's gallery scores are sorted in descending order with a
stable sort (1 + the gallery images scoring higher + those scoring equal that come earlier in the
gallery order). DIR(rank r, FAR f) = fraction of genuine probes whose mate score is accepted at f
and whose rank is <= r.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailface.errors import ProtocolError
from tailface.eval.thresholds import accept_rates, false_alarm_counts
from tailface.eval.vectors import l2_normalize

#: FAR points of the open-set curve: 0, 1e-4 ... 9e-1 (9 per decade), 1 (the toolkit's).
OPENSET_FARS = np.array([0.0] + [m * 10.0 ** e for e in range(-4, 0) for m in range(1, 10)] + [1.0])
#: Rank points of the CMC at a fixed FAR (the toolkit's: 1..10, 20..100).
OPENSET_RANKS = np.array(list(range(1, 11)) + list(range(20, 101, 10)))


@dataclass
class OpenSetResult:
    fars: np.ndarray
    ranks: np.ndarray
    dir: np.ndarray           # len(ranks) x len(fars)
    thresholds: np.ndarray
    false_alarms: np.ndarray
    n_genuine_probes: int
    n_impostor_probes: int

    def at(self, far: float, rank: int = 1) -> float:
        fi = np.flatnonzero(np.isclose(self.fars, far, rtol=1e-9, atol=0))
        ri = np.flatnonzero(self.ranks == rank)
        if not fi.size or not ri.size:
            raise KeyError(f"(FAR {far}, rank {rank}) was not evaluated")
        return float(self.dir[ri[0], fi[0]])

    def to_dict(self) -> dict:
        return {"far": self.fars.tolist(), "rank": self.ranks.tolist(), "dir": self.dir.tolist(),
                "threshold": [float(t) for t in self.thresholds],
                "false_alarms": self.false_alarms.tolist(),
                "n_genuine_probes": self.n_genuine_probes,
                "n_impostor_probes": self.n_impostor_probes}


def probe_statistics(gallery, gallery_labels, probes, probe_labels, chunk: int = 2048,
                     scores=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per probe on normalised features: ``(is_genuine, max_score, mate_score, mate_rank)``
    (mate values are meaningful for genuine probes only). ``scores(p0, p1)``, when given, returns
    the precomputed ``(p1 - p0) x len(gallery)`` score block of probes ``p0:p1`` instead of a GEMM
    (``probes`` is then only used for its length)."""
    gallery_labels = np.asarray(gallery_labels)
    probe_labels = np.asarray(probe_labels)
    unique_gallery = len(np.unique(gallery_labels)) == len(gallery_labels)
    if unique_gallery:  # one gallery image per identity (BLUFR): the mate is a lookup
        order = np.argsort(gallery_labels)
        pos = np.searchsorted(gallery_labels[order], probe_labels)
        pos = np.minimum(pos, len(order) - 1)
        found = gallery_labels[order][pos] == probe_labels
        mate_of = np.where(found, order[pos], -1)
    n = len(probes)
    is_gen = np.zeros(n, bool)
    best = np.empty(n, np.float64)
    mate = np.full(n, -np.inf, np.float64)
    rank = np.zeros(n, np.int64)
    columns = np.arange(len(gallery_labels))
    if scores is None:  # float64 scores, as for verification
        gallery64, probes64 = gallery.astype(np.float64), probes.astype(np.float64)
    for p0 in range(0, n, chunk):
        p1 = min(n, p0 + chunk)
        rows = np.arange(p1 - p0)
        s = probes64[p0:p1] @ gallery64.T if scores is None else scores(p0, p1)
        best[p0:p1] = s.max(axis=1)
        if unique_gallery:
            mate_idx = mate_of[p0:p1]
            genuine = mate_idx >= 0
            mate_idx = np.where(genuine, mate_idx, 0)
        else:
            match = probe_labels[p0:p1, None] == gallery_labels[None, :]
            genuine = match.any(axis=1)
            mate_idx = np.where(match, s, -np.inf).argmax(axis=1)
        mate_score = np.where(genuine, s[rows, mate_idx], -np.inf)
        higher = (s > mate_score[:, None]).sum(axis=1)
        tied = (s == mate_score[:, None]).sum(axis=1) > 1  # another gallery image scores the same
        tied_before = np.zeros(p1 - p0, np.int64)
        if tied.any():
            t = np.flatnonzero(tied)
            tied_before[t] = ((s[t] == mate_score[t, None]) & (columns[None, :] < mate_idx[t, None])).sum(axis=1)
        is_gen[p0:p1] = genuine
        mate[p0:p1] = mate_score
        rank[p0:p1] = 1 + higher + tied_before
    return is_gen, best, mate, rank


def open_set_identification(gallery_feats, gallery_labels, probe_feats, probe_labels,
                            fars=OPENSET_FARS, ranks=(1,), source: str = "features") -> OpenSetResult:
    """Detection-and-identification rate at each (rank, FAR); see the module docstring."""
    gallery = l2_normalize(gallery_feats, f"{source} (gallery)")
    probes = l2_normalize(probe_feats, f"{source} (probes)")
    if len(gallery_labels) != len(gallery) or len(probe_labels) != len(probes):
        raise ProtocolError(f"{source}: labels and feature rows differ in number "
                            f"(gallery {len(gallery_labels)} vs {len(gallery)}, "
                            f"probes {len(probe_labels)} vs {len(probes)})")
    is_gen, best, mate, rank = probe_statistics(gallery, gallery_labels, probes, probe_labels)
    return rates_from_statistics(is_gen, best, mate, rank, fars, ranks, source)


def rates_from_statistics(is_gen, best, mate, rank, fars, ranks, source: str = "features") -> OpenSetResult:
    n_gen, n_imp = int(is_gen.sum()), int((~is_gen).sum())
    if n_gen == 0 or n_imp == 0:
        raise ProtocolError(f"{source}: {n_gen} genuine and {n_imp} impostor probes; open-set "
                            "identification needs both")
    fars = np.asarray(fars, dtype=np.float64)
    ranks = np.asarray(ranks, dtype=np.int64)
    counts = false_alarm_counts(fars, n_imp)
    impostor = np.sort(best[~is_gen])[::-1]
    gen_mate, gen_rank = mate[is_gen], rank[is_gen]
    _, thresholds = accept_rates(impostor, n_imp, counts, gen_mate)
    dir_ = np.empty((len(ranks), len(fars)))
    top_rank = int(ranks.max()) if ranks.size else 1
    clipped = np.minimum(gen_rank, top_rank + 1)
    for fi, k in enumerate(counts):
        if k == 0:
            accepted = gen_mate > impostor[0]
        elif k >= n_imp:
            accepted = np.ones(n_gen, bool)
        else:
            accepted = gen_mate >= impostor[k - 1]
        hits = np.cumsum(np.bincount(clipped[accepted], minlength=top_rank + 2))
        dir_[:, fi] = hits[ranks] / n_gen
    return OpenSetResult(fars, ranks, dir_, thresholds, counts, n_gen, n_imp)
