"""tailface's k-means against scikit-learn's on the same points and the same number of threads.

Points: ``n`` points drawn around ``k`` centres in ``d`` dimensions (centres standard normal, a
uniformly chosen centre per point plus Gaussian noise of ``--noise`` per dimension); both methods
cluster them into ``k`` clusters. scikit-learn: ``KMeans(n_clusters=k, n_init=1, max_iter=20)``
(its greedy k-means++ start, ``2 + ln k`` candidates per seed, Lloyd). tailface:
``tailface.method.kmeans.kmeans`` with its defaults (and, with ``--old``, the former default
``trials=1, tol=None``: plain k-means++, all ``niter`` iterations). Both inertias are recomputed by
the same exact search. Threads: ``threadpoolctl`` limits BLAS and OpenMP (scikit-learn, numpy),
``faiss.omp_set_num_threads`` faiss.

scikit-learn computes float32 distances by upcasting chunks to float64, which makes its float32
k-means++ start about 4x slower than on float64 input; ``--sklearn-dtype`` chooses what it gets
(the same values either way). Reported ratios use the fastest scikit-learn run of the table.

    python benchmarks/bench_kmeans.py                 # 5,000 x 512 into 700, 2 threads
    python benchmarks/bench_kmeans.py --full --sklearn-dtype float64   # 53,132 x 512 into 7,200
    python benchmarks/bench_kmeans.py --seeds 0 1 2 --old --sklearn-dtype float32 float64
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from tailface.method.kmeans import inertia, kmeans


def points(n: int, dim: int, centres: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    return (c[rng.integers(centres, size=n)] + noise * rng.normal(size=(n, dim))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="53,132 x 512 into 7,200 clusters")
    parser.add_argument("--n", type=int)
    parser.add_argument("--k", type=int)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--noise", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="k-means seeds (each run by both)")
    parser.add_argument("--sklearn-dtype", nargs="+", default=["float32"], choices=["float32", "float64"])
    parser.add_argument("--sklearn-max-iter", type=int, default=20)
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--old", action="store_true", help="also run tailface's former default (trials=1, tol=None)")
    args = parser.parse_args()
    n = args.n or (53_132 if args.full else 5_000)
    k = args.k or (7_200 if args.full else 700)
    x = points(n, args.dim, k, args.noise)
    faiss.omp_set_num_threads(args.threads)
    print(f"n={n} k={k} d={args.dim} noise={args.noise} threads={args.threads} seeds={args.seeds}", flush=True)
    print(f"{'run':<34} {'seed':>4} {'seconds':>9} {'inertia':>14}", flush=True)
    rows: dict[str, list[tuple[float, float]]] = {}

    def record(name, seed, seconds, value):
        rows.setdefault(name, []).append((seconds, value))
        print(f"{name:<34} {seed:>4} {seconds:>9.2f} {value:>14.6e}", flush=True)

    with threadpool_limits(args.threads):
        for seed in args.seeds:
            variants = [("tailface kmeans (default)", {})]
            if args.old:
                variants.append(("tailface kmeans trials=1 (old)", {"trials": 1, "tol": None}))
            for name, kwargs in variants:
                t0 = time.perf_counter()
                result = kmeans(x, k, seed=seed, **kwargs)
                seconds = time.perf_counter() - t0
                record(name, seed, seconds, inertia(x, result.centroids))
            if args.no_sklearn:
                continue
            from sklearn.cluster import KMeans

            for dtype in args.sklearn_dtype:
                t0 = time.perf_counter()
                km = KMeans(n_clusters=k, n_init=1, max_iter=args.sklearn_max_iter, random_state=seed)
                km.fit(x.astype(dtype))
                seconds = time.perf_counter() - t0
                record(f"sklearn {dtype}", seed, seconds, inertia(x, km.cluster_centers_))
                print(f"{'':<34} (sklearn stopped after {km.n_iter_} iterations)", flush=True)
    print("\nmean over seeds:")
    means = {name: (np.mean([r[0] for r in v]), np.mean([r[1] for r in v])) for name, v in rows.items()}
    ours = means["tailface kmeans (default)"]
    sk = [v for name, v in means.items() if name.startswith("sklearn")]
    for name, (seconds, value) in means.items():
        print(f"{name:<34} {seconds:>9.2f} s {value:>14.6e}")
    if sk:
        fastest = min(sk, key=lambda v: v[0])
        print(f"\ntime ratio sklearn(fastest) / tailface: {fastest[0] / ours[0]:.1f}x")
        print(f"inertia ratio tailface / sklearn(fastest): {ours[1] / fastest[1]:.4f}")
        for name, v in means.items():
            if name.startswith("sklearn"):
                print(f"  vs {name}: time {v[0] / ours[0]:.1f}x, inertia ratio {ours[1] / v[1]:.4f}")


if __name__ == "__main__":
    main()
