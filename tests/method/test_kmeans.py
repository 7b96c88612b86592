"""k-means (tailface.method.kmeans): greedy k-means++ start, early stop, restarts, edge cases."""

import faiss
import numpy as np
import pytest

from tailface.method.kmeans import default_trials, greedy_kmeanspp_seeds, inertia, kmeans, kmeanspp_seeds


def clustered(n=900, centres=120, dim=32, noise=0.7, seed=0):
    """Many small well-separated clusters: where a plain k-means++ start doubles up seeds."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    return (c[rng.integers(centres, size=n)] + noise * rng.normal(size=(n, dim))).astype(np.float32)


def old_default(x, k, seed):
    """The former ``kmeans`` default: plain k-means++ seeds, then faiss for all 20 iterations."""
    return kmeans(x, k, seed=seed, trials=1, tol=None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_is_no_worse_than_the_old_default(seed):
    x = clustered(seed=seed)
    new, old = kmeans(x, 120, seed=seed), old_default(x, 120, seed)
    assert new.inertia <= old.inertia
    assert new.inertia < 0.97 * old.inertia  # on this case the greedy start is clearly better


def test_old_default_is_reproduced_exactly():
    x = clustered(n=400, centres=40)
    ref = faiss.Kmeans(x.shape[1], 40, niter=20, seed=3, min_points_per_centroid=1, max_points_per_centroid=256)
    ref.train(x, init_centroids=x[kmeanspp_seeds(x, 40, 3)])
    old = old_default(x, 40, 3)
    np.testing.assert_allclose(inertia(x, old.centroids), inertia(x, ref.centroids), rtol=1e-6)


def test_deterministic_by_seed():
    x = clustered(n=500, centres=50)
    a, b = kmeans(x, 50, seed=4), kmeans(x, 50, seed=4)
    np.testing.assert_array_equal(a.assignment, b.assignment)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(greedy_kmeanspp_seeds(x, 50, 7), greedy_kmeanspp_seeds(x, 50, 7))
    assert not np.array_equal(greedy_kmeanspp_seeds(x, 50, 7), greedy_kmeanspp_seeds(x, 50, 8))


@pytest.mark.parametrize("block", [1, 16])
def test_greedy_seeds_are_distinct_points_and_beat_plain_seeds(block):
    x = clustered()
    seeds = greedy_kmeanspp_seeds(x, 120, seed=0, block=block)
    assert len(seeds) == 120 and len(set(seeds.tolist())) == 120
    plain = np.mean([inertia(x, x[kmeanspp_seeds(x, 120, s)]) for s in range(3)])
    assert inertia(x, x[seeds]) < plain
    assert default_trials(700) == 2 + int(2 * np.log(700))


def test_restarts_keep_the_best_run():
    x = clustered(n=400, centres=40)
    one = kmeans(x, 40, seed=0)
    three = kmeans(x, 40, seed=0, restarts=3)
    assert three.inertia <= one.inertia
    assert three.inertia == min(kmeans(x, 40, seed=s).inertia for s in range(3))


def test_early_stop_matches_full_iterations_once_converged():
    x = clustered(n=400, centres=40)
    early, full = kmeans(x, 40, seed=0, niter=50), kmeans(x, 40, seed=0, niter=50, tol=None)
    assert early.inertia == pytest.approx(full.inertia, rel=1e-5)


def test_k_equal_n_and_duplicates():
    x = clustered(n=30, centres=5)
    result = kmeans(x, 30)
    assert result.inertia == 0.0 and len(result.centroids) == 30
    np.testing.assert_array_equal(result.assignment, np.arange(30))
    np.testing.assert_array_equal(np.sort(greedy_kmeanspp_seeds(x, 30)), np.arange(30))
    # 3 distinct points repeated: more clusters than distinct points
    dup = np.repeat(np.eye(3, 4, dtype=np.float32) * 5, 4, axis=0)
    seeds = greedy_kmeanspp_seeds(dup, 5, seed=0)
    assert len(set(seeds.tolist())) == 5
    assert {tuple(p) for p in dup[seeds]} == {tuple(p) for p in dup}  # every distinct point seeded
    result = kmeans(dup, 5, seed=0)
    assert result.inertia < 1e-2  # faiss nudges the centroids it splits to refill empty clusters
    assert result.assignment.max() + 1 == len(result.centroids) <= 5
    assert len(np.unique(result.assignment)) == 3
    with pytest.raises(ValueError):
        kmeans(dup, 13)
    with pytest.raises(ValueError):
        kmeans(dup, 2, restarts=0)
