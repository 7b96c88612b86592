"""A training step of Semi-Siamese Training against a plain softmax step, both through ``tailface.train.fit``.

Same network (``small`` at 32x32, d 128), the same in-memory images and batch size, the CelebA
configs' settings: softmax over ``--classes`` identities (baselines/celeba/abcd.yaml: 5,561)
against SST with its momentum gallery network and a prototype queue of ``--queue`` slots
(method/celeba_sst.yaml: 4,096, CosFace m 0.35, s 32, batches of identity pairs). SST's step adds
a forward of the gallery network over the batch (no backward), the momentum update of its
parameters and the queue; it has no per-class layer, so its cost does not grow with the classes.
Runs are interleaved (ABBA order); the ratio is the median of per-repetition ratios.

    python benchmarks/bench_sst_step.py [--steps 40] [--reps 4] [--threads 1] [--classes 5561] [--images N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from tailface.data import InMemoryFaceSet
from tailface.experiment.sst import pair_sampler
from tailface.heads.margins import Margin
from tailface.method.sst import SemiSiamese
from tailface.train import TrainConfig, build_head, build_model, fit


def softmax_run(faceset, cfg, steps):
    torch.manual_seed(0)
    model = build_model("small", input_size=32, embedding_size=128)
    head = build_head("softmax", 128, faceset.num_classes)
    with tempfile.TemporaryDirectory() as out:
        fit(model, head, faceset, cfg.replace(max_steps=steps), out)


def sst_run(faceset, cfg, steps, queue):
    torch.manual_seed(0)
    probe = build_model("small", input_size=32, embedding_size=128)
    objective = SemiSiamese(probe, 128, momentum=0.995, queue_size=queue,
                            margin=Margin("cosface", scale=32.0, value=0.35))
    with tempfile.TemporaryDirectory() as out:
        fit(probe, objective, faceset, cfg.replace(max_steps=steps, sampler=pair_sampler(cfg.batch_size)), out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=5561)
    parser.add_argument("--queue", type=int, default=4096)
    parser.add_argument("--images", type=int, default=None,
                        help="images in memory (default 3 x classes, at most 20,000, at least one a class)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.images or max(args.classes, min(3 * args.classes, 20_000))
    labels = np.arange(n) % args.classes
    faceset = InMemoryFaceSet(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), labels)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.05, warmup_epochs=0.2, milestones=[1],
                      log_every=20, progress=False, num_workers=0)
    runs = {"softmax": lambda steps: softmax_run(faceset, cfg, steps),
            "sst": lambda steps: sst_run(faceset, cfg, steps, args.queue)}
    for run in runs.values():
        run(3)  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {name: [] for name in runs}
    ratios = []
    for rep in range(args.reps):
        for name in (("softmax", "sst") if rep % 2 == 0 else ("sst", "softmax")):  # ABBA: no order bias
            t0 = time.perf_counter()
            runs[name](args.steps)
            times[name].append(time.perf_counter() - t0)
        ratios.append(times["sst"][-1] / times["softmax"][-1])
        print(f"rep {rep}: softmax {times['softmax'][-1]:.2f} s, sst {times['sst'][-1]:.2f} s, "
              f"ratio {ratios[-1]:.3f}", flush=True)
    print(f"small 32x32, batch {args.batch_size}, {args.steps} steps, {args.threads} thread(s), {args.reps} reps; "
          f"softmax over {args.classes:,} classes, SST queue {args.queue:,}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:8s} median {median:.2f} s ({1000 * median / args.steps:.1f} ms/step)")
    print(f"ratio sst / softmax (median of per-rep ratios): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
