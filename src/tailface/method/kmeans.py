"""k-means with a k-means++ start, run by faiss.

faiss's own initialisation picks ``k`` random points; on tail-class means (many small, near-uniform
clusters) that ends far above a k-means++ start after the same iterations. :func:`kmeanspp_seeds`
draws exact k-means++ seeds (each next seed with probability proportional to its squared distance
to the nearest chosen seed) and stays fast by rejection sampling: proposals come from slightly
stale distances, are accepted with probability ``fresh / stale``, and the distances of all points
are refreshed with one matrix product per batch of new seeds.
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


def kmeans(x: np.ndarray, k: int, init: str = "kmeans++", niter: int = 20, seed: int = 0,
           spherical: bool = False) -> KMeansResult:
    """k-means of the rows of ``x`` into at most ``k`` clusters with faiss; ``init`` is
    ``"kmeans++"`` (our seeding) or ``"random"`` (faiss's default). ``spherical`` normalises the
    centroids after each iteration (use with L2-normalised ``x``)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"cannot make {k} clusters from {n} points")
    if init not in ("kmeans++", "random"):
        raise ValueError(f"unknown k-means init {init!r}; known: kmeans++, random")
    if k == n:
        return KMeansResult(np.arange(n), x.copy(), 0.0)
    km = faiss.Kmeans(d, k, niter=niter, seed=seed, spherical=spherical, min_points_per_centroid=1,
                      max_points_per_centroid=max(256, -(-n // k)), verbose=False)
    init_centroids = x[kmeanspp_seeds(x, k, seed)] if init == "kmeans++" else None
    km.train(x, init_centroids=init_centroids)
    _, assign = km.index.search(x, 1)
    assert km.centroids is not None  # set by train()
    used, assignment = np.unique(assign.ravel(), return_inverse=True)
    centroids = km.centroids[used]
    return KMeansResult(assignment.astype(np.int64), centroids, inertia(x, centroids))
