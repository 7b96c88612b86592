"""The tail heads of issue 21 against plain softmax: cost of one training step of the head.

One step of the classification layer alone, the features given (the backbone left out): features
(``--batch`` x ``--dim``, requiring grad, as the backbone's output does) -> head -> loss ->
backward (into the rows and the features) -> SGD step (momentum 0.9, weight decay 5e-4) on the
head's parameters. Heads, each built by the registry (``tailface.heads.create_head``) with the
paper's settings:

    softmax             plain f . w logits (the reference of every ratio)
    arcface             s 64, m 0.5
    subcenter_arcface   K 3 sub-centres per class (C x 3 x d rows), s 64, m 0.5
    adaface             m 0.4, h 0.333, s 64, running norm statistics
    vpl                 ArcFace s 64, m 0.5 with the memory mixed in from the first step (start_iter 0,
                        delta 200, lambda 0.15): the cost after the authors' 8,000-step warm-up;
                        measured when ``tailface.heads.vpl`` exists, else left out

at each ``--classes`` count (default 85,164, the paper's MS-Celeb subset, and 1,000,000). Every
(head, classes) runs in its own subprocess, ``--rounds`` times round-robin; time: the fastest of
the ``--repeats`` timed steps after ``--warmup`` untimed ones (the minimum is the least disturbed
figure on a shared machine); memory: the growth of the subprocess's peak (CPU: ``ru_maxrss``;
CUDA: ``max_memory_allocated``) from just before the first step (rows, features and labels
allocated) to the end: gradients, momentum and the step's temporaries; plus the persistent bytes
(rows + gradient + momentum, float32). Ratios are against softmax at the same class count,
measured in the same run. Denormals are flushed to zero (as ``bench_dispersion.py`` does).

    python benchmarks/bench_tail_heads.py                               # 85,164 and 1M, d 512, batch 128
    python benchmarks/bench_tail_heads.py --device cuda                 # on a GPU
    python benchmarks/bench_tail_heads.py --classes 1000 --repeats 2    # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch

SETTINGS = {
    "softmax": {},
    "arcface": {"s": 64.0, "m": 0.5},
    "subcenter_arcface": {"k": 3, "s": 64.0, "m": 0.5},
    "adaface": {"m": 0.4, "h": 0.333, "s": 64.0},
    "vpl": {"start_iter": 0, "delta": 200, "lam": 0.15, "s": 64.0, "m": 0.5},
}
REFERENCE = "softmax"


def available_heads() -> list[str]:
    """The heads of :data:`SETTINGS` the registry has (VPL only once ``tailface.heads.vpl`` exists)."""
    import tailface.heads  # noqa: F401  (registers the shipped heads)
    from tailface.heads.base import list_heads

    try:
        import tailface.heads.vpl  # noqa: F401  (registers vpl, where it exists)
    except ImportError:
        pass
    known = set(list_heads())
    return [name for name in SETTINGS if name in known]


def build(name: str, classes: int, dim: int) -> torch.nn.Module:
    from tailface.data.label_space import ClassStats
    from tailface.heads import create_head
    from tailface.heads.base import needs_class_stats

    stats = ClassStats.placeholder(classes) if needs_class_stats(name) else None
    return create_head(name, dim, classes, class_stats=stats, **SETTINGS[name])


def run_one(a: argparse.Namespace) -> dict:
    """One head at one class count, in this (fresh) process."""
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    device = torch.device(a.device)
    head = build(a.head, a.one_classes, a.dim).to(device).train()
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    labels = torch.from_numpy(np.random.default_rng(1).integers(0, a.one_classes, a.batch)).to(device)
    features = torch.randn(a.batch, a.dim, device=device, requires_grad=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        features.grad = None
        head(features, labels).loss.backward()
        optimizer.step()

    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.max_memory_allocated(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.repeats):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    rows = sum(p.numel() for p in head.parameters())
    return {"head": a.head, "classes": a.one_classes, "times": times, "peak_mib": (peak - base) / 2**20,
            "persistent_mib": 3 * rows * 4 / 2**20, "rows_shape": list(head.weight.shape)}


def hardware(device: str, threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, {threads} thread(s)"
    if device == "cuda":
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def table(results: dict[tuple[str, int], dict], heads: list[str], classes: list[int]) -> str:
    lines = ["| classes | head | time/step (ms) | x softmax | peak memory growth (MiB) | x softmax | "
             "rows + grad + momentum (MiB) |", "|---:|---|---:|---:|---:|---:|---:|"]
    for c in classes:
        ref = results.get((REFERENCE, c))
        for name in heads:
            r = results.get((name, c))
            if r is None:
                lines.append(f"| {c:,} | {name} | failed | - | - | - | - |")
                continue
            ratio_t = f"{r['seconds'] / ref['seconds']:.2f}" if ref else "-"
            ratio_m = f"{r['peak_mib'] / ref['peak_mib']:.2f}" if ref and ref["peak_mib"] > 0 else "-"
            lines.append(f"| {c:,} | {name} | {1000 * r['seconds']:.1f} | {ratio_t} | {r['peak_mib']:.0f} | "
                         f"{ratio_m} | {r['persistent_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, nargs="+", default=[85_164, 1_000_000])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--heads", nargs="+", default=None, help=f"a subset of {', '.join(SETTINGS)} (default: all "
                   "the registry has)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: all)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (VPL's memory is live from the 2nd)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per subprocess")
    p.add_argument("--rounds", type=int, default=2, help="subprocesses per (head, classes), round-robin")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--head", help=argparse.SUPPRESS)  # internal: run one head at --one-classes
    p.add_argument("--one-classes", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.head:
        print(json.dumps(run_one(a)))
        return
    heads = a.heads or available_heads()
    unknown = sorted(set(heads) - set(SETTINGS))
    if unknown:
        p.error(f"unknown heads {unknown}; choose among {', '.join(SETTINGS)}")
    if REFERENCE not in heads:
        heads = [REFERENCE, *heads]
    common = ["--batch", str(a.batch), "--dim", str(a.dim), "--device", a.device, "--threads", str(a.threads),
              "--warmup", str(a.warmup), "--repeats", str(a.repeats)]
    results: dict[tuple[str, int], dict] = {}
    for _ in range(a.rounds):  # round-robin: load from other processes hits every head alike
        for c in a.classes:
            for name in heads:
                out = subprocess.run([sys.executable, __file__, "--head", name, "--one-classes", str(c), *common],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{name} @ {c:,}: failed ({out.stderr.strip().splitlines()[-1:]})", flush=True)
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                kept = results.setdefault((name, c), {**r, "times": []})
                kept["times"] += r["times"]
                kept["peak_mib"] = min(kept["peak_mib"], r["peak_mib"])
                print(f"{name} @ {c:,}: {1000 * min(r['times']):.1f} ms/step, peak +{r['peak_mib']:.0f} MiB",
                      flush=True)
    for r in results.values():
        r["seconds"] = min(r["times"])
    print(f"\n$ python benchmarks/bench_tail_heads.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{hardware(a.device, a.threads)}; {a.device}; d {a.dim}, batch {a.batch}, fastest of "
          f"{a.rounds} x {a.repeats} steps after {a.warmup} warm-up step(s) per subprocess\n")
    print(table(results, heads, a.classes))
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{**r, "key": list(k)} for k, r in results.items()], f, indent=1)


if __name__ == "__main__":
    main()
