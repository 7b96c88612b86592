"""Per-rank memory of a class-sharded classifier, computed and (where it fits) measured.

Computed, per rank, for ``C`` identities split over ``W`` ranks (``ceil(C / W)`` rows of ``d``):
the rows, their gradient and the SGD momentum buffer (the persistent part; the gradient is dense
over the local rows, also when sampling), and one ``B x K`` logit matrix of the global batch
(``B = per-rank batch x W``, ``K = ceil(sample_rate x rows)`` kept rows), of which a forward and
backward pass hold a few at once. ``fp16``: rows, gradient and momentum stored in half precision
(the heads compute in float32, so the kept rows are also copied to float32 during the pass).

Measured (``--measure``): one fresh process per configuration builds a
``ShardedMarginHead(kind="arcface")`` with one rank's rows (no process group: a rank's memory is
that of a world-size-1 head of its rows fed the global batch), runs forward, backward and an SGD
step with momentum, and reports the peak RSS above the baseline (after imports and the batch)
and what stays after the step. Only configurations whose estimate fits ``--budget-gib`` run.

``--labels``: host memory of the label bookkeeping of a synthetic 1M-identity dataset (long-tailed
counts): the int64 label array, ``np.bincount`` counts, and the arrays the samplers of
``tailface.data.samplers`` build (measured with tracemalloc, which sees numpy's allocations).

    python benchmarks/bench_classifier_memory.py                 # computed table
    python benchmarks/bench_classifier_memory.py --measure --labels
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys

CLASSES = (100_000, 1_000_000, 10_000_000)
WORLDS = (1, 8, 64)
RATES = (1.0, 0.1)
DTYPES = {"fp32": 4, "fp16": 2}
GIB = 2.0 ** 30


def computed(classes: int, world: int, rate: float, dtype: str, dim: int, batch: int) -> dict:
    rows = -(-classes // world)
    kept = min(rows, math.ceil(round(rate * rows, 9)))
    per = rows * dim * DTYPES[dtype]
    logits = batch * world * kept * 4
    return {"rows": rows, "kept": kept, "weight": per, "grad": per, "momentum": per, "persistent": 3 * per,
            "logits": logits}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _measure_one(rows: int, rate: float, dim: int, global_batch: int) -> dict:
    import torch

    from tailface.heads.sharded import ShardedMarginHead

    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(global_batch, dim, generator=gen)
    y = torch.randint(0, rows, (global_batch,), generator=gen)
    base = _rss()
    head = ShardedMarginHead(dim, rows, kind="arcface", sample_rate=rate)
    opt = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    out = head(x, y, step=0)
    out.loss.backward()
    opt.step()
    del out
    after = _rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_over_base": peak - base, "retained": after - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128, help="per-rank batch")
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--budget-gib", type=float, default=9.0, help="skip measurements estimated above this")
    parser.add_argument("--labels", action="store_true")
    parser.add_argument("--one", nargs=3, type=float, metavar=("ROWS", "RATE", "GLOBAL_BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure_one(int(args.one[0]), args.one[1], args.dim, int(args.one[2]))))
        return

    print(f"d={args.dim}, per-rank batch {args.batch} (global batch = {args.batch} x W); GiB per rank")
    head = (f"{'C':>10} {'W':>3} {'rate':>4} {'dtype':>5} {'rows':>9} {'rows GiB':>9} {'+grad+mom':>9} "
            f"{'logits':>8} {'measured peak':>13} {'retained':>9}")
    print(head)
    for classes in CLASSES:
        for world in WORLDS:
            for rate in RATES:
                for dtype in DTYPES:
                    c = computed(classes, world, rate, dtype, args.dim, args.batch)
                    peak = retained = ""
                    estimate = (c["persistent"] + c["kept"] * args.dim * 8 + 4 * c["logits"]) / GIB
                    if args.measure and dtype == "fp32" and estimate <= args.budget_gib:
                        cmd = [sys.executable, __file__, "--dim", str(args.dim), "--one", str(c["rows"]), str(rate),
                               str(args.batch * world)]
                        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                        peak, retained = f"{res['peak_over_base'] / GIB:.3f}", f"{res['retained'] / GIB:.3f}"
                    elif args.measure and dtype == "fp32":
                        peak = f"(>{args.budget_gib:g})"
                    print(f"{classes:>10,} {world:>3} {rate:>4} {dtype:>5} {c['rows']:>9,} {c['weight'] / GIB:>9.3f} "
                          f"{c['persistent'] / GIB:>9.3f} {c['logits'] / GIB:>8.3f} {peak:>13} {retained:>9}",
                          flush=True)
    if args.labels:
        labels_table()


def labels_table(identities: int = 1_000_000, seed: int = 0) -> None:
    import tracemalloc

    import numpy as np

    from tailface.data.samplers import ClassAwareSampler, PKSampler

    rng = np.random.default_rng(seed)
    counts = np.minimum(1 + rng.zipf(1.8, identities), 1000)  # long tail: half the classes 1-2 images
    labels = np.repeat(np.arange(identities, dtype=np.int64), counts)
    rng.shuffle(labels)
    print(f"\nsynthetic dataset: {identities:,} identities, {len(labels):,} images "
          f"(median {int(np.median(counts))}, max {counts.max()} per identity); MiB")
    rows = [("labels int64 array", lambda: labels.copy()),
            ("np.bincount(labels)", lambda: np.bincount(labels)),
            ("PKSampler(labels, p=32, k=4)", lambda: PKSampler(labels, 32, 4)),
            ("ClassAwareSampler(labels)", lambda: ClassAwareSampler(labels)),
            ("per-class index lists (np.split of argsort)",
             lambda: np.split(np.argsort(labels, kind="stable"), np.cumsum(np.bincount(labels))[:-1]))]
    for name, build in rows:
        tracemalloc.start()
        obj = build()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del obj
        print(f"  {name:<46} retained {current / 2**20:>8.1f}  peak {peak / 2**20:>8.1f}")


if __name__ == "__main__":
    main()
