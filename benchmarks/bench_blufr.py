"""BLUFR speed: tailface's evaluation (top impostors only) against a straightforward NumPy one that
scores each trial's test set with one GEMM and sorts every impostor score (tests/eval/naive.py).

    python benchmarks/bench_blufr.py [--naive-trials 3] [--dim 512]

Random identity-clustered features (13,233 x dim: 0.5 x identity centre + unit noise) with the real
configuration (faces_root()/blufr). The naive run covers the first --naive-trials trials; its time
is scaled to 10 trials for the ratio. Results of those trials are asserted identical (VR over the
whole FAR grid, DIR at every rank/FAR point).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.eval import naive  # noqa: E402

from tailface.eval.blufr import evaluate_blufr, load_blufr_config  # noqa: E402
from tailface.eval.openset import OPENSET_FARS, OPENSET_RANKS  # noqa: E402
from tailface.eval.verification import VERIFICATION_FARS  # noqa: E402
from tailface.paths import faces_root  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--naive-trials", type=int, default=3)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()
    path = faces_root() / "blufr" / "blufr_lfw_config.mat"
    if not path.is_file():
        print(f"skipped: BLUFR configuration absent ({path})")
        return 0
    config = load_blufr_config(path)
    rng = np.random.default_rng(0)   # identity centre + noise: non-trivial VR and DIR
    centres = rng.standard_normal((config.labels.max() + 1, args.dim)).astype(np.float32)
    x = 0.5 * centres[config.labels] + rng.standard_normal((len(config.labels), args.dim)).astype(np.float32)
    t0 = time.perf_counter()
    fast = evaluate_blufr(x, config)
    t_fast = time.perf_counter() - t0
    print(f"tailface: {len(config.trials)} trials, {len(x)} x {args.dim}: {t_fast:.2f} s")
    k = min(args.naive_trials, len(config.trials))
    t0 = time.perf_counter()
    for t, trial in enumerate(config.trials[:k]):
        vr = naive.verification(x[trial.test], config.labels[trial.test], VERIFICATION_FARS)
        dirs = naive.openset(x[trial.gallery], config.labels[trial.gallery], x[trial.probe],
                             config.labels[trial.probe], OPENSET_FARS, OPENSET_RANKS)
        assert np.array_equal(vr, fast["trials"][t]["verification"]["vr"]), f"VR differs, trial {t + 1}"
        assert np.array_equal(dirs, np.array(fast["trials"][t]["openset"]["dir"])), f"DIR differs, trial {t + 1}"
    t_naive = time.perf_counter() - t0
    per_trial = t_naive / k
    print(f"naive (sort every impostor): {k} trials in {t_naive:.2f} s = {per_trial:.2f} s/trial "
          f"-> {per_trial * len(config.trials):.1f} s for {len(config.trials)} trials")
    print(f"results identical on {k} trials ({len(VERIFICATION_FARS)} VR points, "
          f"{len(OPENSET_RANKS)}x{len(OPENSET_FARS)} DIR points each)")
    print(f"speed-up: {per_trial * len(config.trials) / t_fast:.1f}x")
    r = fast["report"]
    print(f"these features: VR@0.1% {100 * r['vr_far_0.1%']['mean']:.3f}%, "
          f"DIR@1% rank1 {100 * r['dir_far_1%_rank1']['mean']:.3f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
