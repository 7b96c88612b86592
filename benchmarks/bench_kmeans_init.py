"""k-means++ start vs faiss's random start: final inertia and time, at the paper's scale.

53,132 points (tail class means) in 512-d -> 7,200 clusters, faiss k-means, 20 iterations both.
The points are a Gaussian mixture with long-tailed component sizes (1..~60 points, a stand-in for
face-feature class means: many near-duplicate identities plus isolated ones), scaled so that the
within-component spread is comparable to the spread of the component centres.

    python benchmarks/bench_kmeans_init.py [--n 53132] [--k 7200] [--dim 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from tailface.method.kmeans import inertia, kmeans, kmeanspp_seeds


def mixture(n: int, dim: int, components: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.5, components) + 1.0
    which = rng.choice(components, size=n, p=weights / weights.sum())
    centres = rng.normal(size=(components, dim)).astype(np.float32)
    return centres[which] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=53_132)
    parser.add_argument("--k", type=int, default=7_200)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--components", type=int, default=5_000)
    parser.add_argument("--niter", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    x = mixture(args.n, args.dim, args.components)
    t0 = time.perf_counter()
    seeds = kmeanspp_seeds(x, args.k, seed=0)
    t_seed = time.perf_counter() - t0
    rows = [("k-means++ seeds only", inertia(x, x[seeds]), t_seed)]
    rng = np.random.default_rng(0)
    rows.append(("random seeds only", inertia(x, x[rng.choice(args.n, args.k, replace=False)]), 0.0))
    for init in ("random", "kmeans++"):
        t0 = time.perf_counter()
        result = kmeans(x, args.k, init=init, niter=args.niter, seed=0)
        rows.append((f"faiss k-means, {init} start", result.inertia, time.perf_counter() - t0))
    base = rows[2][1]
    print(f"n={args.n} k={args.k} d={args.dim} niter={args.niter} threads={args.threads}")
    print(f"{'run':<30} {'inertia':>14} {'vs random start':>16} {'seconds':>8}")
    for name, value, seconds in rows:
        print(f"{name:<30} {value:>14.1f} {value / base:>16.3f} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
