"""Images per second of each backbone on CPU at its own resolution: a training step (forward,
backward and SGD step of backbone + a linear classifier) and inference (eval mode, no grad).
Ratios (``small`` / this, i.e. how many times slower than ``small``) use ``small`` measured in
the same run. Reports the best and the median over the
timed iterations (after warm-up), since the machine is shared.

    python benchmarks/bench_backbones.py [--threads 2] [--models small resnet34 ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn

from tailface.models import create_model, default_input_size, list_models

LARGE_BATCH = 16  # 112x112 networks run at ~tens of images/s on a CPU


def time_steps(step, iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def bench(name: str, batch: int, iters: int, warmup: int, num_classes: int = 1000) -> dict:
    torch.manual_seed(0)
    size = default_input_size(name)
    model = create_model(name, input_size=size, embedding_size=128 if name == "small" else 512)
    classifier = nn.Linear(model(torch.randn(2, 3, size, size)).shape[1], num_classes)
    optimizer = torch.optim.SGD(list(model.parameters()) + list(classifier.parameters()), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, num_classes, (batch,))

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(classifier(model(x)), y).backward()
        optimizer.step()

    def infer_step():
        with torch.no_grad():
            model(x)

    model.train()
    train = time_steps(train_step, iters, warmup)
    model.eval()
    infer = time_steps(infer_step, iters, warmup)
    return {"name": name, "size": size, "batch": batch,
            "params": sum(p.numel() for p in model.parameters()),
            "train_best": batch / min(train), "train_median": batch / statistics.median(train),
            "infer_best": batch / min(infer), "infer_median": batch / statistics.median(infer)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="default: every registered backbone")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128, help="batch of networks below 112x112")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--large-iters", type=int, default=3, help="timed iterations at 112x112")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.models or list_models()
    names = ["small"] + [n for n in names if n != "small"]  # the baseline first
    rows = []
    for name in names:
        large = default_input_size(name) >= 112
        rows.append(bench(name, LARGE_BATCH if large else args.batch,
                          args.large_iters if large else args.iters, 1 if large else args.warmup))
        r = rows[-1]
        print(f"measured {name}: train {r['train_best']:.1f} img/s, inference {r['infer_best']:.1f} img/s", flush=True)
    base = rows[0]
    print(f"\ntorch {torch.__version__}, {args.threads} threads; img/s best (median); "
          f"'small/x' = best img/s of small / best img/s of the model")
    print(f"{'model':<14} {'input':>5} {'batch':>5} {'params':>11} {'train img/s':>16} {'small/x':>8} "
          f"{'inference img/s':>17} {'small/x':>8}")
    for r in rows:
        print(f"{r['name']:<14} {r['size']:>5} {r['batch']:>5} {r['params']:>11,} "
              f"{r['train_best']:>7.1f} ({r['train_median']:>6.1f}) {base['train_best'] / r['train_best']:>8.1f} "
              f"{r['infer_best']:>8.1f} ({r['infer_median']:>6.1f}) {base['infer_best'] / r['infer_best']:>8.1f}")


if __name__ == "__main__":
    main()
