"""Class-sharded heads against the replicated head, and the sharded dispersion head against sharded
softmax: time per training step and peak memory per rank, ``--world`` gloo CPU processes.

One training step of the classification layer alone (the backbone is left out): the rank's
features (``--batch`` per rank, requires grad) -> head -> loss -> backward -> SGD step (momentum
0.9, weight decay 5e-4) on the rows the rank holds. Variants:

- ``replicated-<kind>``: every rank holds all C rows (the unsharded ``softmax`` / ``cosface`` /
  ``arcface`` head, as DDP runs it): its own batch against all rows, then the all-reduce (mean)
  of the ``C x d`` row gradient that DDP does;
- ``sharded-<kind>``: ``ShardedMarginHead``, C / W rows per rank, the global batch (all-gather)
  against them;
- ``sharded-dispersion`` (mode ``sample``) and ``sharded-dispersion-batch``:
  ``ShardedDispersionHead`` over N_h head + N_t tail classes in N_k super classes (the paper's
  proportions: 32,032 + 53,132 in 7,200 super classes at 85,164 classes, scaled to 1,000,000);
  compared with ``sharded-softmax`` over the same number of classes.

Every variant runs in its own ``--world`` fresh processes (spawned one after the other).
Time: per rank the fastest of ``--steps`` timed steps after one warm-up, the slowest rank
counts (ranks wait for each other in the collectives anyway). Memory: per rank, the growth of the
process's peak RSS (``ru_maxrss``) from just before the first step (rows, features, labels
allocated) to the end, the largest over the ranks; plus the persistent bytes (rows + gradient +
momentum) per rank. Ratios are against the baseline measured in the same run.

    python benchmarks/bench_sharded.py                      # 85,164 classes: sharded vs replicated
    python benchmarks/bench_sharded.py --dispersion         # + dispersion vs softmax at 85,164 and 1M
    python benchmarks/bench_sharded.py --classes 2000 --batch 16 --steps 2 --dispersion --million 20000  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

PAPER = dict(num_head=32_032, num_tail=53_132, num_super=7_200)  # 85,164 classes
TAIL_SHARE = 0.19  # share of tail samples in a batch (the paper's Table 1)


def super_structure(num_tail: int, num_super: int, max_size: int, rng) -> np.ndarray:
    """Super class of each tail class: geometric-like sizes in 1..max_size summing to num_tail."""
    sizes = np.clip(rng.geometric(num_super / num_tail, size=num_super), 1, max_size)
    while (diff := num_tail - int(sizes.sum())) != 0:
        pick = rng.integers(0, num_super, size=min(abs(diff), num_super))
        pick = np.unique(pick)[: abs(diff)]
        if diff > 0:
            sizes[pick[sizes[pick] < max_size]] += 1
        else:
            sizes[pick[sizes[pick] > 1]] -= 1
    return rng.permutation(np.repeat(np.arange(num_super), sizes))


def scaled(num_classes: int) -> dict:
    f = num_classes / sum(PAPER[k] for k in ("num_head", "num_tail"))
    num_head = int(round(PAPER["num_head"] * f))
    num_super = max(1, int(round(PAPER["num_super"] * f)))
    return dict(num_head=num_head, num_tail=num_classes - num_head, num_super=num_super)


def build(variant: str, num_classes: int, dim: int):
    from tailface.heads import create_head
    from tailface.heads.margins import Margin
    from tailface.heads.sharded import ShardedMarginHead
    from tailface.method.sharded_dispersion import ShardedDispersionHead

    kind = variant.split("-", 1)[1]
    if variant.startswith("replicated-"):
        kwargs = {} if kind == "softmax" else dict(s=64.0, m=0.5 if kind == "arcface" else 0.35)
        return create_head(kind, dim, num_classes, **kwargs), None
    if kind.startswith("dispersion"):
        st = scaled(num_classes)
        sot = super_structure(st["num_tail"], st["num_super"], 50, np.random.default_rng(0))
        mode = "batch" if kind.endswith("batch") else "sample"
        return ShardedDispersionHead(dim, st["num_head"], sot, margin=Margin(), mode=mode), st
    return ShardedMarginHead(dim, num_classes, kind=kind, s=64.0, m=0.5 if kind == "arcface" else 0.35), None


def _rank(rank: int, world: int, init: str, out: str, args: dict) -> None:
    torch.set_num_threads(args["threads"])
    torch.set_flush_denormal(True)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    torch.manual_seed(rank)
    variant, c, d, b = args["variant"], args["classes"], args["dim"], args["batch"]
    head, st = build(variant, c, d)
    opt = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(100 + rank)
    if st is not None:  # ~19% tail samples
        n_tail = int(round(TAIL_SHARE * b))
        labels = np.concatenate([rng.integers(0, st["num_head"], b - n_tail),
                                 st["num_head"] + rng.integers(0, st["num_tail"], n_tail)])
    else:
        labels = rng.integers(0, c, b)
    y = torch.from_numpy(labels)
    x = torch.randn(b, d, requires_grad=True)
    replicated = variant.startswith("replicated-")

    def step():
        opt.zero_grad(set_to_none=True)
        x.grad = None
        out = head(x, y)
        out.loss.backward()
        if replicated and world > 1:  # what DDP does with a replicated head: mean of the C x d gradient
            dist.all_reduce(head.weight.grad)
            head.weight.grad /= world
        opt.step()

    dist.barrier()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up (allocates the momentum buffer)
    times = []
    for _ in range(args["steps"]):
        dist.barrier()
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base  # KiB on Linux
    rows = head.weight.shape[0]
    result = {"rank": rank, "time_s": min(times), "peak_gib": peak / 2**20, "rows": rows,
              "persistent_gib": 3 * rows * d * 4 / 2**30}
    with open(f"{out}.{rank}", "w") as f:
        json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


def run_variant(variant: str, classes: int, a) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        args = dict(variant=variant, classes=classes, dim=a.dim, batch=a.batch, steps=a.steps, threads=a.threads)
        mp.spawn(_rank, args=(a.world, os.path.join(tmp, "init"), os.path.join(tmp, "out"), args), nprocs=a.world)
        ranks = [json.load(open(os.path.join(tmp, f"out.{r}"))) for r in range(a.world)]
    return {"variant": variant, "classes": classes, "time_s": max(r["time_s"] for r in ranks),
            "peak_gib": max(r["peak_gib"] for r in ranks), "rows": max(r["rows"] for r in ranks),
            "persistent_gib": max(r["persistent_gib"] for r in ranks)}


def table(rows: list[dict], baseline_of: dict) -> str:
    lines = ["| classes | variant | rows/rank | time/step (s) | x baseline | peak RSS growth/rank (GiB) | x baseline |"
             " persistent/rank (GiB) |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    by = {(r["classes"], r["variant"]): r for r in rows}
    for r in rows:
        base = by.get((r["classes"], baseline_of.get(r["variant"], "")))
        tr = f"{r['time_s'] / base['time_s']:.2f}" if base else "1"
        mr = f"{r['peak_gib'] / base['peak_gib']:.2f}" if base and base["peak_gib"] > 0 else ("1" if not base else "-")
        lines.append(f"| {r['classes']:,} | {r['variant']} | {r['rows']:,} | {r['time_s']:.3f} | {tr} | "
                     f"{r['peak_gib']:.3f} | {mr} | {r['persistent_gib']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=85_164)
    p.add_argument("--million", type=int, default=1_000_000, help="class count of the large dispersion run")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--batch", type=int, default=64, help="per rank")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--kinds", nargs="+", default=["softmax", "arcface"], choices=["softmax", "cosface", "arcface"])
    p.add_argument("--dispersion", action="store_true", help="also the dispersion head vs softmax, at --classes "
                   "and --million classes (sharded)")
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args()
    plan = []
    baseline_of: dict[str, str] = {}
    for kind in a.kinds:
        plan += [(f"replicated-{kind}", a.classes), (f"sharded-{kind}", a.classes)]
        baseline_of[f"sharded-{kind}"] = f"replicated-{kind}"
    if a.dispersion:
        for c in (a.classes, a.million):
            plan += [("sharded-softmax", c)] if ("sharded-softmax", c) not in plan else []
            plan += [("sharded-dispersion", c), ("sharded-dispersion-batch", c)]
        baseline_of.update({"sharded-dispersion": "sharded-softmax", "sharded-dispersion-batch": "sharded-softmax"})
    rows = []
    for variant, c in plan:
        rows.append(run_variant(variant, c, a))
        r = rows[-1]
        print(f"{variant} @ {c:,}: {r['time_s']:.3f} s/step, peak +{r['peak_gib']:.3f} GiB/rank", flush=True)
    print(f"\nworld {a.world} (gloo, CPU, {a.threads} thread(s)/rank), d {a.dim}, batch {a.batch}/rank "
          f"(global {a.batch * a.world}), fastest of {a.steps} steps after 1 warm-up\n")
    print(table(rows, baseline_of))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
