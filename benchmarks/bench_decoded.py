"""Training from a set decoded once into memory (data/decoded.py) against reading it every epoch.

The cpu profile's cell: the prepared CelebA training set (``$TAILFACE_DATA/celeba-train``, 112x112
records; ``--data`` for another), ``small`` at 32x32, softmax over every identity, batch 64, one
torch thread, the profile's 2 loader workers when reading every epoch. Each setting runs
``tailface.train.fit`` for ``--steps`` steps: "every epoch" on the set itself (the trainer told not
to decode it, ``TAILFACE_DECODED_MIB=0``), "decoded" on the set decoded beforehand, without workers,
as the trainer runs it after its one-off decode. Runs are interleaved (ABBA). Reported per setting:
wall time and CPU time (this process and its reaped loader workers), both per step, and the
ratios "every epoch / decoded" (above 1: decoding once is faster), the median of per-repetition
ratios. The one-off decode of the whole set is timed apart: a full cell (5,080 steps) pays it once.

    TAILFACE_DATA=data python benchmarks/bench_decoded.py [--steps 200] [--reps 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time

import torch

from tailface.data.decoded import DecodedFaceSet
from tailface.data.training_set import open_data
from tailface.paths import prepared_path
from tailface.train import TrainConfig, build_head, build_model, fit


def cpu_seconds() -> float:
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def timed_fit(faceset, cfg) -> tuple[float, float]:
    """(wall s, CPU s) of one run of ``fit`` on ``faceset`` as it is."""
    torch.manual_seed(0)
    model = build_model("small", input_size=32, embedding_size=128)
    head = build_head("softmax", 128, faceset.num_classes)
    wall, cpu = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory() as out:
        fit(model, head, faceset, cfg, out)
    return time.perf_counter() - wall, cpu_seconds() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(prepared_path("celeba-train")))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ["TAILFACE_DECODED_MIB"] = "0"  # each run reads the set it is given, as given
    faceset = open_data(args.data)
    cfg = TrainConfig(epochs=20, batch_size=64, lr=0.1, warmup_epochs=0.5, milestones=[12, 16], seed=0,
                      num_workers=args.workers, max_steps=args.steps, progress=False)
    t0 = time.perf_counter()
    decoded = DecodedFaceSet(faceset, (32, 32))
    decode_s = time.perf_counter() - t0
    settings = {"decoded": (decoded, cfg.replace(num_workers=0)), "every epoch": (faceset, cfg)}
    runs: dict[str, list[tuple[float, float]]] = {"decoded": [], "every epoch": []}
    for rep in range(args.reps):
        for name in (("decoded", "every epoch") if rep % 2 == 0 else ("every epoch", "decoded")):
            runs[name].append(timed_fit(*settings[name]))
            wall, cpu = runs[name][-1]
            print(f"rep {rep}: {name}: wall {wall:.1f} s, CPU {cpu:.1f} s", flush=True)
    print(f"{args.data}: {len(faceset):,} images, {faceset.num_classes:,} classes; small 32x32, batch 64, "
          f"{args.steps} steps, 1 torch thread, {args.workers} workers when reading every epoch, {args.reps} reps")
    print(f"one-off decode of the whole set at 32x32: {decode_s:.1f} s (not in the runs; a cell of 5,080 steps pays "
          f"it once: {1000 * decode_s / 5080:.1f} ms/step)")
    for name, values in runs.items():
        wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        print(f"{name:12s} wall {1000 * wall / args.steps:.1f} ms/step, CPU {1000 * cpu / args.steps:.1f} ms/step")
    for i, what in enumerate(("wall", "CPU")):
        ratio = statistics.median(e[i] / d[i] for e, d in zip(runs["every epoch"], runs["decoded"]))
        print(f"{what} ratio every epoch / decoded (median of per-rep ratios): {ratio:.2f}")


if __name__ == "__main__":
    main()
