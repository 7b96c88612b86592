"""Dispersion head vs plain softmax over all classes: forward+backward time and peak memory.

Paper scale by default: N_h 32,032 head classes, N_t 53,132 tail classes grouped into N_k 7,200
super classes (1..50 members, mean ~7.4), d 512, batch 256 (~19% tail samples, as in the paper's
Table 1), float32, CPU.

Every variant runs in its own subprocess. Time: the fastest of ``--rounds`` x ``--repeats`` forward+backward
passes (subprocesses run round-robin over the variants; the minimum is the least disturbed by
other load on a shared machine), each subprocess after one warm-up (denormals flushed to zero, see
``--keep-denormals``). Memory: growth of the process's peak resident set (``ru_maxrss``) from just
before the first pass (weights, features and labels allocated) to the end: the extra memory the
passes needed at their peak (logits, softmax, gradients incl. the weight gradient).

    python benchmarks/bench_dispersion.py [--threads 1] [--repeats 3] [--small]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

VARIANTS = {
    "softmax": "plain softmax over all N_h + N_t classes",
    "dispersion": "dispersion head, per-sample mode (Eqs. 6/8)",
    "dispersion-batch": "dispersion head, batch mode",
    "arcface": "ArcFace over all N_h + N_t classes (heads' MarginHead: F.normalize)",
    "arcface-fastnorm": "ArcFace over all classes, rows normalised by the method's normalize_rows",
    "arcface+dispersion": "ArcFace + dispersion head, per-sample mode",
}
BASELINE_OF = {"dispersion": "softmax", "dispersion-batch": "softmax", "arcface-fastnorm": "arcface",
               "arcface+dispersion": "arcface-fastnorm"}


def super_structure(num_tail: int, num_super: int, max_size: int, rng) -> np.ndarray:
    """Super class of each tail class: sizes 1..max_size, geometric-like, summing to num_tail."""
    mean = num_tail / num_super
    sizes = np.clip(rng.geometric(1.0 / mean, size=num_super), 1, max_size)
    while sizes.sum() != num_tail:
        i = rng.integers(num_super)
        if sizes.sum() < num_tail and sizes[i] < max_size:
            sizes[i] += 1
        elif sizes.sum() > num_tail and sizes[i] > 1:
            sizes[i] -= 1
    return rng.permutation(np.repeat(np.arange(num_super), sizes))


def arcface_all(features, weight, labels, s=64.0, m=0.5, fast_norm=False):
    from tailface.heads.margins import margin_logits
    from tailface.heads.normalize import normalize_rows

    rows = normalize_rows(weight) if fast_norm else F.normalize(weight, dim=1)
    cos = F.normalize(features, dim=1) @ rows.t()
    return F.cross_entropy(margin_logits(cos, labels, "arcface", s, m), labels)


def run_variant(args) -> dict:
    from tailface.heads.margins import Margin
    from tailface.method.dispersion import DispersionHead

    torch.set_num_threads(args.threads)
    # normalised-weight gradients underflow into denormals, which make CPU arithmetic ~10x slower
    # (ArcFace over all classes: 7.4 s instead of ~2.5 s); flushing them is what training should do too
    torch.set_flush_denormal(not args.keep_denormals)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    sup = super_structure(args.num_tail, args.num_super, args.max_size, rng)
    n = args.num_head + args.num_tail
    tail = rng.random(args.batch) < args.tail_fraction
    labels = np.where(tail, args.num_head + rng.integers(0, args.num_tail, args.batch),
                      rng.integers(0, args.num_head, args.batch))
    labels = torch.from_numpy(labels)
    features = torch.randn(args.batch, args.dim, requires_grad=True)
    if args.variant in ("softmax", "arcface", "arcface-fastnorm"):
        weight = torch.nn.Parameter(torch.empty(n, args.dim).normal_(0, 0.01))  # no transient copy

        def step():
            loss = (F.cross_entropy(F.linear(features, weight), labels) if args.variant == "softmax"
                    else arcface_all(features, weight, labels, fast_norm=args.variant == "arcface-fastnorm"))
            loss.backward()
    else:
        margin = Margin("arcface", 64.0, 0.5) if "arcface" in args.variant else Margin()
        head = DispersionHead(args.dim, args.num_head, sup, margin=margin,
                              mode="batch" if args.variant.endswith("batch") else "sample")
        weight = head.weight

        def step():
            head(features, labels).loss.backward()

    def clear():
        features.grad = None
        weight.grad = None

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    clear()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        clear()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": args.variant, "times": times,
            "peak_mib": (peak - base_rss) / 1024.0, "max_super_size": int(np.bincount(sup).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="run one variant (internal)")
    parser.add_argument("--num-head", type=int, default=32_032)
    parser.add_argument("--num-tail", type=int, default=53_132)
    parser.add_argument("--num-super", type=int, default=7_200)
    parser.add_argument("--max-size", type=int, default=50)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--tail-fraction", type=float, default=213.4 / (902.8 + 213.4))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per subprocess")
    parser.add_argument("--rounds", type=int, default=2, help="subprocesses per variant, round-robin")
    parser.add_argument("--keep-denormals", action="store_true", help="do not flush denormals to zero")
    parser.add_argument("--small", action="store_true", help="a tiny configuration (smoke test)")
    args = parser.parse_args()
    if args.small:
        args.num_head, args.num_tail, args.num_super, args.max_size = 300, 500, 70, 20
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    forwarded = list(sys.argv[1:])
    results = {}
    for _ in range(args.rounds):  # round-robin, so that load from other processes hits every variant
        for variant in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--variant", variant, *forwarded],
                                 check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if variant in results:
                results[variant]["times"] += r["times"]
                results[variant]["peak_mib"] = min(results[variant]["peak_mib"], r["peak_mib"])
            else:
                results[variant] = r
    for r in results.values():
        r["seconds"] = min(r["times"])
    print(f"N_h={args.num_head} N_t={args.num_tail} N_k={args.num_super} d={args.dim} batch={args.batch} "
          f"threads={args.threads} passes={args.rounds}x{args.repeats} largest super class="
          f"{results['dispersion']['max_super_size']}")
    print(f"{'variant':<20} {'fwd+bwd s':>10} {'peak MiB':>9} {'time ratio':>10} {'mem ratio':>9}  baseline")
    for variant, r in results.items():
        base = BASELINE_OF.get(variant)
        t_ratio = f"{r['seconds'] / results[base]['seconds']:.3f}" if base else "-"
        m_ratio = f"{r['peak_mib'] / results[base]['peak_mib']:.3f}" if base else "-"
        print(f"{variant:<20} {r['seconds']:>10.3f} {r['peak_mib']:>9.1f} {t_ratio:>10} {m_ratio:>9}  {base or ''}")


if __name__ == "__main__":
    main()
