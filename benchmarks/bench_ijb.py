"""IJB-C-sized 1:1 scoring: tailface's pair scoring and readings against the anchors' way in NumPy.

    python benchmarks/bench_ijb.py [--pairs 15658489] [--templates 23124] [--enrolled 3531] [--dim 512]

Synthetic template features (IJB-C's sizes by default: 3,531 enrolment templates, one per subject,
and 19,593 probe templates of those subjects; ``--templates`` in all; 0.45 x subject centre + unit
noise, L2-normalised, float64) and a pair list of ``--pairs`` pairs, each probe template with its
subject's enrolment template (genuine) and impostor pairs enrolment x probe drawn at random, listed
by enrolment template as the release lists them. Both implementations compute the same figures:
scores (cosine), TAR at FAR 1e-6 .. 1e-1 exactly (the k-th largest impostor) and at the nearest
scikit-learn ROC point. tailface: :func:`tailface.eval.ijb_verification.verify_pairs` (pairs ordered
by first template, GEMM blocks; ROC from the sorted genuine and impostor scores). Naive:
``tests/eval/ijb_naive.numpy_reference`` (features of both templates gathered per pair in batches
of 100,000, as arcface_torch's eval_ijbc.py; a stable sort of all scores as scikit-learn's
roc_curve; every impostor sorted). Figures are asserted equal; the time ratio and each one's peak
of NumPy allocations (tracemalloc) are printed. ``--pairs 200000`` runs in seconds.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.eval.ijb_naive import numpy_reference  # noqa: E402

from tailface.eval.ijb_verification import IJB_FARS, verify_pairs  # noqa: E402

MB = 1 << 20


def synthetic_pairs(n_pairs: int, n_templates: int, n_enrolled: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_probe = n_templates - n_enrolled
    probe_subject = rng.integers(0, n_enrolled, n_probe)
    subject = np.r_[np.arange(n_enrolled), probe_subject]
    centres = rng.standard_normal((n_enrolled, dim))
    t = 0.45 * centres[subject] + rng.standard_normal((n_templates, dim))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    n_imp = n_pairs - n_probe
    first = np.r_[probe_subject, rng.integers(0, n_enrolled, n_imp)].astype(np.int32)
    second = np.r_[np.arange(n_probe), rng.integers(0, n_probe, n_imp)].astype(np.int32) + n_enrolled
    labels = (subject[first] == subject[second]).astype(np.int8)
    order = np.argsort(first, kind="stable")  # grouped by enrolment template, as the release lists them
    return t, first[order], second[order], labels[order]


def measured(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=15_658_489)
    ap.add_argument("--templates", type=int, default=3_531 + 19_593)
    ap.add_argument("--enrolled", type=int, default=3_531)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    t, first, second, labels = synthetic_pairs(args.pairs, args.templates, args.enrolled, args.dim, args.seed)
    print(f"{len(first):,} pairs ({int(labels.sum()):,} genuine) of {len(t):,} templates x {args.dim} "
          f"(float64, {t.nbytes / MB:.0f} MB): generated in {time.perf_counter() - t0:.1f} s")
    fast, t_fast, peak_fast = measured(lambda: verify_pairs(t, first, second, labels, IJB_FARS))
    print(f"tailface (GEMM blocks, sorted-score ROC): {t_fast:.2f} s, "
          f"peak {peak_fast / MB:.0f} MB of NumPy allocations")
    (scores, exact, nearest), t_naive, peak_naive = measured(
        lambda: numpy_reference(t, first, second, labels, IJB_FARS))
    print(f"naive (gather per pair, sort every score): {t_naive:.2f} s, peak {peak_naive / MB:.0f} MB")
    diff = float(np.abs(scores - fast.scores).max())
    assert fast.exact["tar"] == exact, (fast.exact["tar"], exact)
    assert fast.nearest["tar"] == nearest, (fast.nearest["tar"], nearest)
    print(f"figures identical (TAR exact and nearest at {len(IJB_FARS)} FARs; scores within {diff:.1e})")
    print(f"speed-up: {t_naive / t_fast:.1f}x; peak memory ratio (naive / tailface): {peak_naive / peak_fast:.1f}; "
          f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("TAR exact  : " + "  ".join(f"{f:.0e} {100 * v:.2f}" for f, v in zip(IJB_FARS, exact)))
    print("TAR nearest: " + "  ".join(f"{f:.0e} {100 * v:.2f}" for f, v in zip(IJB_FARS, nearest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
