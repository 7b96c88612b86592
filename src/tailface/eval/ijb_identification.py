"""IJB 1:N identification: rank-k and TPIR at FPIR, under both gallery and both threshold conventions.

A *search* is a probe template compared with every gallery template (cosine of the L2-normalised
template features, float64). It is *mated* when its subject has a template in the gallery (at most
one: the release enrols each subject once). Rank of a mated search: 1 + the gallery templates scoring
higher than its mate + those scoring equal that come earlier in gallery order (ascending template id,
the anchors' ``np.unique`` order): BLUFR's stable-sort rule. Rank-k = the share of mated searches of
rank <= k.

Gallery conventions:

* ``separate``: the two galleries (IJB-C G1/G2, IJB-B S1/S2) each searched by every probe template;
  a probe whose subject is in the other gallery is a non-mated search. Figures per gallery and their
  mean (insightface ``ijb_evals.py``, PRs #1386/#1387/#1739; the IJB protocol's design). Also
  ``pooled`` rank-k: both galleries' hits over both galleries' mated searches (what ``ijb_evals.py``
  prints as top-k when every probe is mated in exactly one gallery, as in the release).
* ``merged``: one gallery, G1 + G2 (insightface ``ijb_1n.py``, AdaFace ``validate_IJB_BC.py``). In the
  release every probe subject is enrolled in one of the two, so no search is non-mated and an FPIR
  over non-mated searches does not exist (reported as null, with the reason).

Threshold conventions for TPIR at FPIR ``f``:

* ``exact`` (tailface, as its BLUFR open-set: :func:`tailface.eval.openset.rates_from_statistics`):
  impostor scores = the top score of each non-mated search (``n`` of them); ``k = round(f n)``;
  threshold = the ``k``-th largest; a mated search is a true positive when its mate is rank 1 and
  scores ``>=`` the threshold (``k = 0``: strictly above every impostor). ``k`` false alarms (more
  with ties).
* ``anchor``, separate galleries (``ijb_evals.py``): threshold = the ``max(floor(f n), 1)``-th largest
  non-mated top score (``sorted[max(int(n f) - 1, 0)]``); true positive when the mate scores
  strictly above the threshold and strictly above every other gallery template. Without ties only
  ``k - 1`` non-mated searches lie above that threshold: the realised FPIR is one false alarm short
  of ``f`` (the off-by-one of AdaFace #169 / insightface #1373), and ``floor`` instead of ``round``
  can take one more.
* ``anchor``, merged gallery (``ijb_1n.py``, AdaFace): impostor scores = every non-mate (search,
  gallery template) score, all searches flattened; threshold = the ``ceil(f q)``-th largest, ``q`` =
  the number of searches (not of impostor scores: a pair-level threshold counted per search);
  true positive when the mate scores strictly above it, with no rank condition; TPIR over the mated
  searches (all searches in the release).

Scores are computed in blocks of probe templates; for the merged anchor only the ``max ceil(f q)``
largest non-mate scores are kept (a running top-k), never the ``q x g`` matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tailface.errors import ProtocolError
from tailface.eval.openset import rates_from_statistics

FPIRS = (0.01, 0.1)
RANKS = (1, 5, 10)


@dataclass
class SearchStatistics:
    mated: np.ndarray         # bool per search
    mate: np.ndarray          # float64 mate score (-inf when not mated)
    rank: np.ndarray          # int64 BLUFR rank of the mate (0 when not mated)
    best: np.ndarray          # float64 top score over the gallery
    best_nonmate: np.ndarray  # float64 top score over the non-mate gallery templates (-inf if none)
    top_nonmate: np.ndarray   # float64 descending: the largest non-mate (search, template) scores


def mate_index(probe_subjects: np.ndarray, gallery_subjects: np.ndarray) -> np.ndarray:
    """Gallery position of each probe's subject, -1 when not enrolled (subjects unique in the gallery)."""
    order = np.argsort(gallery_subjects, kind="stable")
    pos = np.minimum(np.searchsorted(gallery_subjects[order], probe_subjects), len(order) - 1)
    return np.where(gallery_subjects[order][pos] == probe_subjects, order[pos], -1)


def search_statistics(probes: np.ndarray, probe_subjects, gallery: np.ndarray, gallery_subjects,
                      top_pairs: int = 0, block: int = 1024) -> SearchStatistics:
    """Per-search statistics of ``probes`` (rows, L2-normalised float64) against ``gallery``."""
    probe_subjects, gallery_subjects = np.asarray(probe_subjects), np.asarray(gallery_subjects)
    mate_of = mate_index(probe_subjects, gallery_subjects)
    n, g = len(probes), len(gallery)
    mate = np.full(n, -np.inf)
    rank = np.zeros(n, np.int64)
    best = np.empty(n)
    best_nonmate = np.empty(n)
    top = np.zeros(0)
    columns = np.arange(g)
    for p0 in range(0, n, block):
        p1 = min(n, p0 + block)
        s = probes[p0:p1] @ gallery.T
        rows = np.arange(p1 - p0)
        m = mate_of[p0:p1]
        has = m >= 0
        mate_score = np.where(has, s[rows, np.maximum(m, 0)], -np.inf)
        higher = (s > mate_score[:, None]).sum(axis=1)
        tied_before = ((s == mate_score[:, None]) & (columns[None, :] < m[:, None])).sum(axis=1)
        mate[p0:p1] = mate_score
        rank[p0:p1] = np.where(has, 1 + higher + tied_before, 0)
        best[p0:p1] = s.max(axis=1)
        s[rows[has], m[has]] = -np.inf  # the mates removed: what is left is non-mate
        best_nonmate[p0:p1] = s.max(axis=1)
        if top_pairs:
            flat = s[np.isfinite(s)]
            top = np.concatenate([top, flat])
            if len(top) > top_pairs:
                top = np.partition(top, len(top) - top_pairs)[len(top) - top_pairs:]
    return SearchStatistics(mate_of >= 0, mate, rank, best, best_nonmate, np.sort(top)[::-1])


def _rank_rates(stats: SearchStatistics, ranks) -> dict:
    r = stats.rank[stats.mated]
    return {str(k): float(np.mean(r <= k)) if len(r) else None for k in ranks}


def exact_tpir(stats: SearchStatistics, fpirs, source: str) -> dict:
    """TPIR with tailface's rule (BLUFR's open-set identification at rank 1)."""
    n_mated, n_nonmated = int(stats.mated.sum()), int((~stats.mated).sum())
    if n_mated == 0 or n_nonmated == 0:
        return {"tpir": [None] * len(fpirs), "threshold": [None] * len(fpirs), "false_alarms": [None] * len(fpirs),
                "undefined": f"{n_mated} mated and {n_nonmated} non-mated searches; TPIR at FPIR needs both"}
    r = rates_from_statistics(stats.mated, stats.best, stats.mate, stats.rank, fpirs, [1], source)
    return {"tpir": r.dir[0].tolist(), "threshold": [float(t) for t in r.thresholds],
            "false_alarms": r.false_alarms.tolist()}


def anchor_tpir_separate(stats: SearchStatistics, fpirs) -> dict:
    """TPIR as insightface ``ijb_evals.py`` computes it for one gallery (see the module docstring)."""
    nonmated = np.sort(stats.best[~stats.mated])[::-1]
    n = len(nonmated)
    if n == 0 or not stats.mated.any():
        return {"tpir": [None] * len(fpirs), "threshold": [None] * len(fpirs), "false_alarms": [None] * len(fpirs),
                "undefined": f"{int(stats.mated.sum())} mated and {n} non-mated searches; TPIR at FPIR needs both"}
    mate, correct = stats.mate[stats.mated], stats.mate[stats.mated] > stats.best_nonmate[stats.mated]
    tpir, thresholds, alarms = [], [], []
    for f in fpirs:
        t = nonmated[max(int(n * f) - 1, 0)]
        tpir.append(float(np.mean(correct & (mate > t))))
        thresholds.append(float(t))
        alarms.append(int((nonmated > t).sum()))
    return {"tpir": tpir, "threshold": thresholds, "false_alarms": alarms}


def anchor_tpir_merged(stats: SearchStatistics, fpirs) -> dict:
    """TPIR as insightface ``ijb_1n.py`` and AdaFace compute it (see the module docstring)."""
    q = len(stats.mated)
    mate = stats.mate[stats.mated]
    tpir: list[float | None] = []
    thresholds: list[float | None] = []
    for f in fpirs:
        k = math.ceil(q * f)
        if not len(mate) or k < 1 or k > len(stats.top_nonmate):
            tpir.append(None)
            thresholds.append(None)
            continue
        t = stats.top_nonmate[k - 1]
        tpir.append(float(np.mean(mate > t)))
        thresholds.append(float(t))
    return {"tpir": tpir, "threshold": thresholds, "pair_rank": [math.ceil(q * f) for f in fpirs]}


def gallery_figures(probes, probe_subjects, gallery, gallery_subjects, fpirs=FPIRS, ranks=RANKS,
                    merged: bool = False, source: str = "gallery") -> dict:
    """Rank-k and TPIR (both threshold conventions) of one gallery."""
    top = max(math.ceil(len(probes) * f) for f in fpirs) if merged else 0
    stats = search_statistics(probes, probe_subjects, gallery, gallery_subjects, top_pairs=top)
    anchor = anchor_tpir_merged(stats, fpirs) if merged else anchor_tpir_separate(stats, fpirs)
    hits = {str(k): int(((stats.rank > 0) & (stats.rank <= k)).sum()) for k in ranks}
    return {"templates": len(gallery), "mated_searches": int(stats.mated.sum()),
            "nonmated_searches": int((~stats.mated).sum()), "hits": hits,
            "rank": _rank_rates(stats, ranks), "exact": exact_tpir(stats, fpirs, source), "anchor": anchor}


def check_gallery(subjects: np.ndarray, source: str) -> None:
    values, counts = np.unique(subjects, return_counts=True)
    if (counts > 1).any():
        raise ProtocolError(f"{source}: subject {values[counts > 1][0]} has {counts[counts > 1][0]} gallery "
                            "templates; 1:N needs one template per enrolled subject")


def _mean(a, b):
    return None if a is None or b is None else (a + b) / 2


def identification(probes, probe_subjects, galleries: dict, fpirs=FPIRS, ranks=RANKS) -> dict:
    """Both gallery conventions. ``galleries``: two entries ``{name: (template ids ascending, features,
    subjects, source)}``; the merged gallery is their union in ascending template id (the anchors'
    ``np.unique`` of the concatenated lists)."""
    (n1, (i1, g1, s1, src1)), (n2, (i2, g2, s2, src2)) = galleries.items()
    for subjects, src in ((s1, src1), (s2, src2)):
        check_gallery(subjects, src)
    shared = np.intersect1d(s1, s2)
    if len(shared):
        raise ProtocolError(f"{src2}: subject {shared[0]} is enrolled in both galleries ({n1} and {n2}); "
                            "the merged gallery needs them disjoint")
    per = {n1: gallery_figures(probes, probe_subjects, g1, s1, fpirs, ranks, source=str(src1)),
           n2: gallery_figures(probes, probe_subjects, g2, s2, fpirs, ranks, source=str(src2))}
    a, b = per[n1], per[n2]
    mean = {"rank": {k: _mean(a["rank"][k], b["rank"][k]) for k in a["rank"]},
            "exact": [_mean(x, y) for x, y in zip(a["exact"]["tpir"], b["exact"]["tpir"])],
            "anchor": [_mean(x, y) for x, y in zip(a["anchor"]["tpir"], b["anchor"]["tpir"])]}
    mated = a["mated_searches"] + b["mated_searches"]
    pooled = {k: (a["hits"][k] + b["hits"][k]) / mated if mated else None for k in a["hits"]}
    ids = np.concatenate([i1, i2])
    if len(np.unique(ids)) != len(ids):
        raise ProtocolError(f"{src2}: a template is in both galleries ({n1} and {n2})")
    order = np.argsort(ids, kind="stable")
    merged = gallery_figures(probes, probe_subjects, np.concatenate([g1, g2])[order],
                             np.concatenate([s1, s2])[order], fpirs, ranks, merged=True, source=f"{src1} + {src2}")
    return {"fpir": list(fpirs), "ranks": list(ranks), "probe_templates": len(probes),
            "separate": {**per, "mean": mean, "pooled_rank": pooled}, "merged": merged}
