"""MegaFace-scale identification: rank-1/CMC for 3,530 probe images against up to 1,000,000
synthetic distractors (random unit vectors, streamed in chunks), dim 512, exact faiss inner-product
search. Probes: 706 identities x 5 images, identity centre + 1.6 x noise (same-identity cosine about 0.28).

    python benchmarks/bench_megaface.py [--distractors 1000000] [--probes 3530] [--dim 512]

Baseline measured in the same run: a plain float32 GEMM of the probes against the first 100,000
distractors with np.argpartition for the top 10 (scaled linearly to the full count).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from tailface.eval.megaface import DISTRACTOR_COUNTS, megaface_identification, synthetic_distractors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--distractors", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=3530)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    ids = args.probes // 5
    labels = np.repeat(np.arange(ids), 5)[: args.probes]
    probes = (rng.standard_normal((len(labels), args.dim)) * 1.6
              + rng.standard_normal((ids, args.dim))[labels]).astype(np.float32)
    counts = [c for c in DISTRACTOR_COUNTS if c <= args.distractors]
    generation = [0.0]

    def timed(stream):
        while True:
            t = time.perf_counter()
            try:
                block = next(stream)
            except StopIteration:
                return
            generation[0] += time.perf_counter() - t
            yield block

    t0 = time.perf_counter()
    r = megaface_identification(probes, labels, timed(synthetic_distractors(args.distractors, args.dim, seed=0)),
                                counts=counts)
    t_total = time.perf_counter() - t0
    t_gen = generation[0]
    print(f"{len(probes)} probes x {args.distractors} distractors x {args.dim}: {t_total:.1f} s in all "
          f"({t_gen:.1f} s generating the random distractors, {t_total - t_gen:.1f} s searching + CMC)")
    for n, r1 in zip(r["distractor_counts"], r["rank1"]):
        print(f"  rank-1 @ {n:>9,d} distractors: {100 * r1:.2f}%")
    n_base = min(100_000, args.distractors)
    d = np.concatenate(list(synthetic_distractors(n_base, args.dim, seed=0)))
    p = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    t0 = time.perf_counter()
    for s in range(0, len(p), 512):
        sc = p[s:s + 512] @ d.T
        np.argpartition(-sc, 10, axis=1)[:, :10]
    t_base = (time.perf_counter() - t0) * args.distractors / n_base
    print(f"baseline GEMM + argpartition (no generation): {t_base:.1f} s scaled to {args.distractors}; "
          f"ratio (tailface search only / baseline): {(t_total - t_gen) / t_base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
