"""Images per second of each backbone at its own resolution: a training step (forward,
backward and SGD step of backbone + a linear classifier) and inference (eval mode, no grad).
Ratios (``small`` / this, i.e. how many times slower than ``small``) use ``small`` measured in
the same run. Reports the best and the median over the
timed iterations (after warm-up), since the machine is shared.

    python benchmarks/bench_backbones.py [--threads 2] [--models small resnet34 ...]

On a GPU (the issue's figure: iResNet-50 at 112x112, batch 128, mixed precision, one GPU):

    python benchmarks/bench_backbones.py --device cuda --amp --large-batch 128 --large-iters 20 --models iresnet50
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn

from tailface.models import create_model, default_input_size, list_models

LARGE_BATCH = 16  # 112x112 networks run at ~tens of images/s on a CPU


def time_steps(step, iters: int, warmup: int, device: torch.device) -> list[float]:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def bench(name: str, batch: int, iters: int, warmup: int, device: torch.device, amp: bool = False,
          num_classes: int = 1000) -> dict:
    torch.manual_seed(0)
    size = default_input_size(name)
    model = create_model(name, input_size=size, embedding_size=128 if name == "small" else 512)
    classifier = nn.Linear(model(torch.randn(2, 3, size, size)).shape[1], num_classes)
    model, classifier = model.to(device), classifier.to(device)
    optimizer = torch.optim.SGD(list(model.parameters()) + list(classifier.parameters()), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)

    def autocast():
        return torch.autocast(device.type, dtype=torch.float16, enabled=amp)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.cross_entropy(classifier(model(x)).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def infer_step():
        with torch.no_grad(), autocast():
            model(x)

    model.train()
    train = time_steps(train_step, iters, warmup, device)
    model.eval()
    infer = time_steps(infer_step, iters, warmup, device)
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
    parser.add_argument("--large-batch", type=int, default=LARGE_BATCH, help="batch at 112x112")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--amp", action="store_true", help="float16 autocast + GradScaler (CUDA only)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.amp and device.type != "cuda":
        parser.error("--amp needs --device cuda")
    torch.set_num_threads(args.threads)
    names = args.models or list_models()
    names = ["small"] + [n for n in names if n != "small"]  # the baseline first
    rows = []
    for name in names:
        large = default_input_size(name) >= 112
        rows.append(bench(name, args.large_batch if large else args.batch,
                          args.large_iters if large else args.iters, 1 if large else args.warmup, device, args.amp))
        r = rows[-1]
        print(f"measured {name}: train {r['train_best']:.1f} img/s, inference {r['infer_best']:.1f} img/s", flush=True)
    base = rows[0]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"\ntorch {torch.__version__}, {where}{', amp float16' if args.amp else ''}; img/s best (median); "
          f"'small/x' = best img/s of small / best img/s of the model")
    print(f"{'model':<14} {'input':>5} {'batch':>5} {'params':>11} {'train img/s':>16} {'small/x':>8} "
          f"{'inference img/s':>17} {'small/x':>8}")
    for r in rows:
        print(f"{r['name']:<14} {r['size']:>5} {r['batch']:>5} {r['params']:>11,} "
              f"{r['train_best']:>7.1f} ({r['train_median']:>6.1f}) {base['train_best'] / r['train_best']:>8.1f} "
              f"{r['infer_best']:>8.1f} ({r['infer_median']:>6.1f}) {base['infer_best'] / r['infer_best']:>8.1f}")


if __name__ == "__main__":
    main()
