"""Trainer overhead: ``tailface.train.fit`` against a bare PyTorch loop, same network and batches.

Both train ``small`` (32x32) + a softmax head with SGD on the same in-memory images, the same global
batches (the trainer's epoch order) and the same flips. The bare loop does only: gather the batch
from the image array, flip, normalise, forward, backward, step. ``fit`` adds everything else it does
(per-step LR, DataLoader, logging, tqdm, accuracy, checkpoints at the end). Runs are interleaved
(ABBA order);
the ratio is the median of per-repetition ratios (goal <= 1.05).

    python benchmarks/bench_trainer.py [--steps 30] [--reps 6] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from tailface.data import InMemoryFaceSet
from tailface.data.samplers import RandomSampler
from tailface.data.tensors import epoch_batches
from tailface.train import TrainConfig, build_head, build_model, fit


def bare_loop(faceset, cfg, steps):
    torch.manual_seed(0)
    model = build_model("small", input_size=32, embedding_size=128)
    head = build_head("softmax", 128, faceset.num_classes)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    batches = epoch_batches(RandomSampler(faceset.labels, cfg.seed), 0, cfg.batch_size)[:steps]
    model.train()
    head.train()
    for b, idx in enumerate(batches):
        flips = np.random.default_rng([cfg.seed, 0, b]).random(len(idx)) < 0.5
        images = faceset.images[idx]
        images[flips] = images[flips][:, :, ::-1]
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() - 127.5) / 128.0
        y = torch.from_numpy(faceset.labels[idx])
        loss = head(model(x), y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.item()


def trainer(faceset, cfg, steps):
    torch.manual_seed(0)
    model = build_model("small", input_size=32, embedding_size=128)
    head = build_head("softmax", 128, faceset.num_classes)
    with tempfile.TemporaryDirectory() as out:
        fit(model, head, faceset, cfg.replace(max_steps=steps), out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.batch_size * (args.steps + 1)
    faceset = InMemoryFaceSet(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 200)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.05, warmup_epochs=0.2, milestones=[1],
                      log_every=20, progress=True)
    bare_loop(faceset, cfg, 3)  # warm-up (allocator, kernels)
    trainer(faceset, cfg, 3)
    ratios, t_bare, t_fit = [], [], []
    for rep in range(args.reps):
        timed = {}
        for name in (("bare", "fit") if rep % 2 == 0 else ("fit", "bare")):  # ABBA: no order bias
            t0 = time.perf_counter()
            (bare_loop if name == "bare" else trainer)(faceset, cfg, args.steps)
            timed[name] = time.perf_counter() - t0
        t_bare.append(timed["bare"])
        t_fit.append(timed["fit"])
        ratios.append(t_fit[-1] / t_bare[-1])
        print(f"rep {rep}: bare {t_bare[-1]:.2f} s, fit {t_fit[-1]:.2f} s, ratio {ratios[-1]:.3f}", flush=True)
    images = args.steps * args.batch_size
    print(f"small 32x32, batch {args.batch_size}, {args.steps} steps, {args.threads} thread(s), {args.reps} reps")
    print(f"bare loop: median {statistics.median(t_bare):.2f} s ({images / statistics.median(t_bare):.0f} img/s)")
    print(f"fit:       median {statistics.median(t_fit):.2f} s ({images / statistics.median(t_fit):.0f} img/s)")
    print(f"ratio fit / bare (median of per-rep ratios): {statistics.median(ratios):.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
