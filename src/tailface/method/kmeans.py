"""k-means with a k-means++ start, run by faiss.

faiss's own initialisation picks ``k`` random points; on tail-class means (many small, near-uniform
clusters) that ends far above a k-means++ start after the same iterations. :func:`kmeanspp_seeds`
draws exact k-means++ seeds (each next seed with probability proportional to its squared distance
to the nearest chosen seed) and stays fast by rejection sampling: proposals come from slightly
stale distances, are accepted with probability ``fresh / stale``, and the distances of all points
are refreshed with one matrix product per batch of new seeds.

The default start is *greedy* k-means++ (:func:`greedy_kmeanspp_seeds`): each seed is the best of
several k-means++ candidates. On many small, well-separated clusters the plain draw often puts two
seeds in one cluster and none in another, and Lloyd iterations cannot undo that; the greedy choice
closes most of that gap (docs/benchmarks.md, "k-means").
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


def _sq_dist_to(x: np.ndarray, x_sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared distances of every row of ``x`` to its nearest row of ``centers`` (``n``)."""
    c_sq = (centers * centers).sum(1)
    d = x_sq[:, None] - 2.0 * (x @ centers.T) + c_sq[None, :]
    return np.maximum(d.min(1), 0.0)


def kmeanspp_seeds(x: np.ndarray, k: int, seed: int = 0, refresh: int = 128) -> np.ndarray:
    """Indices of ``k`` k-means++ seeds among the rows of ``x`` (float32 ``n x d``, ``k <= n``)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"cannot draw {k} seeds from {n} points")
    rng = np.random.default_rng(seed)
    x_sq = (x * x).sum(1)
    chosen = [int(rng.integers(n))]
    stale = _sq_dist_to(x, x_sq, x[chosen])
    pending: list[int] = []
    while len(chosen) < k:
        total = stale.sum(dtype=np.float64)
        if total <= 0:  # fewer distinct points than seeds: the rest are arbitrary unused points
            unused = np.setdiff1d(np.arange(n), chosen)
            chosen.extend(rng.choice(unused, k - len(chosen), replace=False).tolist())
            break
        proposals = rng.choice(n, size=4 * refresh, p=stale / total)
        accept_u = rng.random(len(proposals))
        for c, u in zip(proposals, accept_u):
            fresh = stale[c]
            if pending:
                diff = x[pending] - x[c]
                fresh = min(fresh, float((diff * diff).sum(1).min()))
            if u * stale[c] < fresh:
                chosen.append(int(c))
                pending.append(int(c))
                if len(pending) >= refresh or len(chosen) == k:
                    break
        if pending:
            stale = np.minimum(stale, _sq_dist_to(x, x_sq, x[pending]))
            stale[pending] = 0.0
            pending = []
    return np.asarray(chosen, dtype=np.int64)


def greedy_kmeanspp_seeds(x: np.ndarray, k: int, seed: int = 0, trials: int | None = None,
                          block: int = 16) -> np.ndarray:
    """Indices of ``k`` greedy k-means++ seeds among the rows of ``x`` (float32 ``n x d``).

    Each next seed is the best of ``trials`` candidates (default ``2 + floor(ln k)``, as in
    Arthur & Vassilvitskii and scikit-learn), drawn with probability proportional to the squared
    distance to the nearest chosen seed: the one whose addition lowers the potential (sum of those
    squared distances) most. ``block`` seeds draw their candidates together from the distances at
    the start of the block, so the distances of all points to the ``block * trials`` candidates
    are one matrix product; the choice within a block still uses the exact, updated distances
    (``block=1``: exactly the sequential greedy draw). A step none of whose candidates lowers the
    potential (they became seeds earlier in the block) adds no seed; the next block redraws."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"cannot draw {k} seeds from {n} points")
    trials = 2 + int(np.log(k)) if trials is None else int(trials)
    if trials < 1 or block < 1:
        raise ValueError(f"greedy k-means++ needs trials >= 1 and block >= 1, got {trials}, {block}")
    rng = np.random.default_rng(seed)
    x_sq = (x * x).sum(1)
    chosen = [int(rng.integers(n))]
    dist = _sq_dist_to(x, x_sq, x[chosen])
    while len(chosen) < k:
        cum = np.cumsum(dist, dtype=np.float64)
        total = cum[-1]
        if total <= 0:  # fewer distinct points than seeds: the rest are arbitrary unused points
            unused = np.setdiff1d(np.arange(n), chosen)
            chosen.extend(rng.choice(unused, k - len(chosen), replace=False).tolist())
            break
        steps = min(block, k - len(chosen))
        cand = np.searchsorted(cum, rng.random(steps * trials) * total, side="right").clip(max=n - 1)
        cand_x = x[cand]
        d_cand = x_sq[:, None] - 2.0 * (x @ cand_x.T) + (cand_x * cand_x).sum(1)[None, :]
        np.maximum(d_cand, 0.0, out=d_cand)
        d_cand[cand, np.arange(len(cand))] = 0.0
        for step in range(steps):
            cols = slice(step * trials, (step + 1) * trials)
            gain = np.maximum(dist[:, None] - d_cand[:, cols], 0.0).sum(0, dtype=np.float64)
            best = int(gain.argmax())
            if gain[best] <= 0:  # stale draws that became seeds (or copies of seeds) in this block
                continue
            col = step * trials + best
            chosen.append(int(cand[col]))
            dist = np.minimum(dist, d_cand[:, col])
    return np.asarray(chosen, dtype=np.int64)


def inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances of the rows of ``x`` to their nearest centroid."""
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    d, _ = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return float(d.sum(dtype=np.float64))


@dataclass
class KMeansResult:
    assignment: np.ndarray  # cluster of every point, dense 0..k'-1 (empty clusters dropped)
    centroids: np.ndarray  # k' x d
    inertia: float


def default_trials(k: int) -> int:
    """Candidates per greedy k-means++ seed: ``2 + 2 ln k`` (twice scikit-learn's ``ln k`` term;
    measured in docs/benchmarks.md: at 5,000 points / 700 clusters it lowers the final inertia by
    1-2% over ``2 + ln k`` for 1.5x the seeding time)."""
    return 2 + int(2.0 * np.log(max(k, 1)))


def kmeans(x: np.ndarray, k: int, init: str = "kmeans++", niter: int = 20, seed: int = 0,
           spherical: bool = False, trials: int | None = None, block: int = 16,
           restarts: int = 1, tol: float | None = 1e-6) -> KMeansResult:
    """k-means of the rows of ``x`` into at most ``k`` clusters with faiss; ``init`` is
    ``"kmeans++"`` (our seeding) or ``"random"`` (faiss's default). ``spherical`` normalises the
    centroids after each iteration (use with L2-normalised ``x``).

    ``trials``: candidates per k-means++ seed (greedy k-means++, :func:`greedy_kmeanspp_seeds`);
    default :func:`default_trials`; ``1`` is the plain k-means++ draw of :func:`kmeanspp_seeds`
    (the default before greedy seeding). ``block``: seeds whose candidates are drawn together.
    ``restarts``: independent runs (seeds ``seed, seed + 1, ...``), the lowest inertia is kept.
    ``tol``: Lloyd iterations stop before ``niter`` once one lowers the objective by at most
    ``tol`` (relative); ``None`` always runs ``niter`` iterations (the former behaviour).
    Deterministic for a given seed (on one machine and thread count)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"cannot make {k} clusters from {n} points")
    if init not in ("kmeans++", "random"):
        raise ValueError(f"unknown k-means init {init!r}; known: kmeans++, random")
    if restarts < 1 or niter < 1:
        raise ValueError(f"k-means needs restarts >= 1 and niter >= 1, got {restarts}, {niter}")
    if k == n:
        return KMeansResult(np.arange(n), x.copy(), 0.0)
    trials = default_trials(k) if trials is None else int(trials)
    best = _kmeans_once(x, k, init, niter, seed, spherical, trials, block, tol)
    for run in range(1, restarts):
        result = _kmeans_once(x, k, init, niter, seed + run, spherical, trials, block, tol)
        if result.inertia < best.inertia:
            best = result
    return best


def _kmeans_once(x, k, init, niter, seed, spherical, trials, block, tol, chunk: int = 2) -> KMeansResult:
    n, d = x.shape
    centroids: np.ndarray | None = None
    if init == "kmeans++":
        seeds = kmeanspp_seeds(x, k, seed) if trials == 1 else greedy_kmeanspp_seeds(x, k, seed, trials, block)
        centroids = x[seeds]
    done, last = 0, None
    while done < niter:  # faiss runs `chunk` iterations per call; stop once the objective settles
        steps = niter - done if tol is None else min(chunk, niter - done)
        km = faiss.Kmeans(d, k, niter=steps, seed=seed + done, spherical=spherical, min_points_per_centroid=1,
                          max_points_per_centroid=max(256, -(-n // k)), verbose=False)
        km.train(x, init_centroids=centroids)
        assert km.centroids is not None and km.obj is not None  # set by train()
        centroids, done = km.centroids, done + steps
        obj = [last, *km.obj] if last is not None else list(km.obj)
        last = obj[-1]
        if tol is not None and len(obj) > 1 and obj[-2] - obj[-1] <= tol * abs(obj[-2]):
            break
    _, assign = km.index.search(x, 1)
    assert centroids is not None
    used, assignment = np.unique(assign.ravel(), return_inverse=True)
    centroids = centroids[used]
    return KMeansResult(assignment.astype(np.int64), centroids, inertia(x, centroids))
