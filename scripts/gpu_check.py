"""The checks of ``scripts/gpu_check.sh`` (one GPU; ``--cpu-smoke``: tiny sizes on the CPU).

``python scripts/gpu_check.py PART OUT.jsonl [--cpu-smoke]`` appends result rows (JSON lines:
check, value, reference, ratio or difference, tolerance, ok) to OUT.jsonl; ``table OUT.jsonl``
prints them as one table. Parts:

- ``speed``: iResNet-50, 112x112, batch 128: images/s of ``tailface.train.fit`` (in-memory
  images, the trainer's data path) with and without AMP, against a bare PyTorch loop
  (``benchmarks/bench_backbones.py``'s train step: backbone + linear classifier + SGD) on the
  same GPU. No pass/fail: the ratio is reported.
- ``amp``: 50 steps with ``train.amp: true`` against 50 float32 steps from the same start (same
  seed, data, batches): the loss curves agree when the mean relative difference over the 50 steps
  is <= 5% and the last 10 steps' mean losses are within 5% of each other.
- ``sharded`` (run under torchrun, NCCL on GPU, gloo on CPU, any number of processes):
  ``ShardedMarginHead`` (softmax, CosFace, ArcFace) and ``ShardedDispersionHead`` (both modes)
  against the unsharded heads on the same global batch and rows: loss, feature and row gradients
  within rtol 1e-4 (float32 on the device); and ``fit`` with a sharded ArcFace head against the
  unsharded one from the same rows (5 steps, final weights within rtol 1e-3, atol 1e-5). With one process
  the group is initialised (NCCL) but the heads skip their collectives (world size 1); give
  ``NPROC=2`` (or more) on a machine with as many GPUs to run them.
- ``dispersion``: the dispersion head against plain softmax at 1,000,000 classes (d 512, batch
  256, paper proportions of head / tail / super classes): forward + backward time and peak GPU
  memory, ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def sizes(smoke: bool) -> dict:
    if smoke:
        return dict(device="cpu", model="small", model_kw={"input_size": 32, "embedding_size": 32, "width": 8},
                    image=32, batch=8, speed_steps=3, amp_steps=6, classes=50, dim=32,
                    million=20_000, disp_batch=32)
    return dict(device="cuda", model="iresnet50", model_kw={}, image=112, batch=128, speed_steps=30,
                amp_steps=50, classes=1000, dim=512, million=1_000_000, disp_batch=256)


def emit(out: str, check: str, value, reference, diff, tolerance: str, ok) -> None:
    row = dict(check=check, value=value, reference=reference, diff=diff, tolerance=tolerance, ok=ok)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(row, flush=True)


def faceset(n: int, classes: int, size: int):
    from tailface.data import InMemoryFaceSet

    rng = np.random.default_rng(0)
    return InMemoryFaceSet(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % classes)


def run_fit(s: dict, out_dir: Path, amp: bool, steps: int, log_every: int, head_name: str = "arcface"):
    from tailface.train import TrainConfig, build_head, build_model, fit
    from tailface.train.log import read_log

    torch.manual_seed(0)
    model = build_model(s["model"], **s["model_kw"])
    head = build_head(head_name, model(torch.zeros(2, 3, s["image"], s["image"])).shape[1], s["classes"])
    cfg = TrainConfig(epochs=100, batch_size=s["batch"], lr=0.02, warmup_epochs=0, log_every=log_every,
                      image_size=s["image"], device=s["device"], amp=amp, max_steps=steps, progress=False,
                      num_workers=0 if s["device"] == "cpu" else 4, flip=False, seed=0)
    fit(model, head, faceset(max(s["batch"] * 4, s["classes"]), s["classes"], s["image"]), cfg, out_dir)
    return read_log(out_dir / "train.csv")


def part_speed(s: dict, out: str, smoke: bool) -> None:
    from bench_backbones import bench

    device = torch.device(s["device"])
    for amp in (False, True):
        use_amp = amp and not smoke  # the CPU has no float16 AMP: the smoke run times fp32 twice
        bare = bench(s["model"], s["batch"], s["speed_steps"], 3, device, use_amp, num_classes=s["classes"])
        with tempfile.TemporaryDirectory() as tmp:
            log = run_fit(s, Path(tmp), use_amp, s["speed_steps"] + 10, 10)
        speed = statistics.median(r["images_per_s"] for r in log[1:]) if len(log) > 1 else log[-1]["images_per_s"]
        label = "AMP" if amp else "fp32"
        emit(out, f"{s['model']} {s['image']}px b{s['batch']} img/s, fit vs bare loop, {label}"
             + (" (smoke: fp32)" if amp and smoke else ""), round(speed, 1), round(bare["train_best"], 1),
             f"{speed / bare['train_best']:.2f}x", "report", None)


def part_amp(s: dict, out: str, smoke: bool) -> None:
    steps = s["amp_steps"]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = [r["loss"] for r in run_fit(s, Path(tmp) / "fp32", False, steps, 1)]
        amp = [r["loss"] for r in run_fit(s, Path(tmp) / "amp", not smoke, steps, 1)]
    rel = np.abs(np.array(amp) - np.array(fp32)) / np.maximum(np.abs(fp32), 1e-8)
    tail = min(10, steps)
    last = abs(np.mean(amp[-tail:]) - np.mean(fp32[-tail:])) / max(abs(np.mean(fp32[-tail:])), 1e-8)
    ok = bool(rel.mean() <= 0.05 and last <= 0.05 and np.isfinite(amp).all())
    emit(out, f"{steps} AMP steps vs {steps} fp32 steps, loss curves" + (" (smoke: fp32 twice)" if smoke else ""),
         f"last {tail} mean {np.mean(amp[-tail:]):.4f}", f"{np.mean(fp32[-tail:]):.4f}",
         f"mean rel {rel.mean():.4f}, last-{tail} rel {last:.4f}", "mean rel <= 0.05, last-10 rel <= 0.05", ok)


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def part_sharded(s: dict, out: str, smoke: bool) -> None:
    import torch.distributed as dist

    from tailface.heads import create_head
    from tailface.heads.margins import Margin
    from tailface.heads.sharded import ShardedMarginHead, gather_full_rows, load_full_weight
    from tailface.method.dispersion import DispersionHead
    from tailface.method.sharded_dispersion import ShardedDispersionHead
    from tailface.train import distributed as ddp

    use_cuda = s["device"] == "cuda"
    if not dist.is_initialized():  # also for one process (init_distributed skips the group then)
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    info = ddp.init_distributed(use_cuda)
    device = torch.device("cuda", info.local_rank) if use_cuda else torch.device("cpu")
    rank, world = info.rank, info.world_size
    backend = dist.get_backend() if dist.is_initialized() else "none"
    try:
        g = torch.Generator().manual_seed(0)
        d, b_local = 64, 32
        b = b_local * world
        x = torch.randn(b, d, generator=g)
        num_head = 300
        sot = np.random.default_rng(0).integers(0, 80, 700)
        sot[:80] = np.arange(80)
        cases = {"softmax": ("margin", {}), "cosface": ("margin", dict(s=32.0, m=0.35)),
                 "arcface": ("margin", dict(s=32.0, m=0.5)),
                 "dispersion-sample": ("disp", dict(margin=Margin("arcface", 32.0, 0.5), mode="sample")),
                 "dispersion-batch": ("disp", dict(margin=Margin("cosface", 32.0, 0.35), mode="batch"))}
        for name, (family, kw) in cases.items():
            if family == "margin":
                c = 1000
                sharded: torch.nn.Module = ShardedMarginHead(d, c, kind=name, **kw)
                ref = create_head(name, d, c, **kw)
            else:
                c = num_head + len(sot)
                sharded = ShardedDispersionHead(d, num_head, sot, **kw)
                ref = DispersionHead(d, num_head, sot, **kw)
            y = torch.randint(0, c, (b,), generator=g)
            full = torch.randn(c, d, generator=g) * 0.1
            load_full_weight(sharded, full)  # type: ignore[arg-type]
            with torch.no_grad():
                ref.weight.copy_(full)
            sharded, ref = sharded.to(device), ref.to(device)
            xs = x[rank * b_local:(rank + 1) * b_local].clone().to(device).requires_grad_(True)
            xr = x.clone().to(device).requires_grad_(True)
            ls = sharded(xs, y[rank * b_local:(rank + 1) * b_local].to(device)).loss
            lr = ref(xr, y.to(device)).loss
            ls.backward()
            lr.backward()
            rows = gather_full_rows(sharded, sharded.weight.grad)  # type: ignore[arg-type]
            assert rows is not None
            assert xs.grad is not None and xr.grad is not None and ref.weight.grad is not None
            mine = slice(rank * b_local, (rank + 1) * b_local)
            diffs = [_max_rel(ls.detach(), lr.detach()), _max_rel(xs.grad, xr.grad[mine]),
                     _max_rel(rows, ref.weight.grad)]
            if rank == 0:
                emit(out, f"sharded {name} vs unsharded, {world} process(es), {backend}", f"loss {float(ls):.5f}",
                     f"{float(lr):.5f}", f"max rel (loss, features, rows) {max(diffs):.2e}", "rtol 1e-4",
                     max(diffs) <= 1e-4)
        # the trainer: sharded ArcFace against the unsharded one from the same rows
        if rank == 0 or world > 1:
            _fit_check(s, out, rank, world, backend)
    finally:
        dist.destroy_process_group()


def _fit_check(s: dict, out: str, rank: int, world: int, backend: str) -> None:
    from tailface.heads.arcface import ArcFaceHead
    from tailface.train import TrainConfig, build_model, fit
    from tailface.train.sharded import build_sharded_head

    tmp = Path(os.environ.get("GPU_CHECK_TMP", tempfile.gettempdir())) / "gpu_check_fit"
    results = []
    for name in ("sharded", "plain"):
        torch.manual_seed(0)
        model = build_model("small", input_size=32, embedding_size=32, width=8)
        head = build_sharded_head("arcface", 32, 64, s=16.0, m=0.3, seed=1)
        if name == "plain":
            from tailface.heads.sharded import gather_full_weight

            full = gather_full_weight(head)
            head = ArcFaceHead(32, 64, s=16.0, m=0.3)
            with torch.no_grad():
                head.weight.copy_(full)
        cfg = TrainConfig(epochs=1, batch_size=16 * world, lr=0.01, max_steps=5, image_size=32, device=s["device"],
                          progress=False, flip=False, log_every=1)
        folder = tmp / f"{name}-{os.getpid() if world == 1 else 'w'}"
        if rank == 0 and folder.exists():
            import shutil

            shutil.rmtree(folder)
        results.append(fit(model, head, faceset(16 * world * 5, 64, 32), cfg, folder))
    if rank == 0:
        a, p = (torch.load(r, weights_only=False) for r in results)
        pairs = [(a[k][n].float(), p[k][n].float()) for k in ("model", "head") for n in p[k]
                 if p[k][n].is_floating_point()]
        diff = max(float((x - y).abs().max()) for x, y in pairs)
        ok = all(torch.allclose(x, y, rtol=1e-3, atol=1e-5) for x, y in pairs)
        emit(out, f"fit, sharded ArcFace vs unsharded, 5 steps, {world} process(es), {backend}",
             f"head {tuple(a['head']['weight'].shape)}", f"{tuple(p['head']['weight'].shape)}",
             f"max abs diff (final weights) {diff:.2e}", "rtol 1e-3, atol 1e-5", ok)


def part_dispersion(s: dict, out: str, smoke: bool) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_sharded import scaled, super_structure
    from tailface.heads.margins import Margin
    from tailface.heads.sharded import ShardedMarginHead
    from tailface.method.sharded_dispersion import ShardedDispersionHead

    device = torch.device(s["device"])
    c, d, b = s["million"], s["dim"], s["disp_batch"]
    st = scaled(c)
    sot = super_structure(st["num_tail"], st["num_super"], 50, np.random.default_rng(0))
    results = {}
    for name in ("softmax", "dispersion-sample", "dispersion-batch"):
        if name == "softmax":
            head: torch.nn.Module = ShardedMarginHead(d, c, kind="softmax")
        else:
            head = ShardedDispersionHead(d, st["num_head"], sot, margin=Margin(), mode=name.split("-")[1])
        head = head.to(device)
        rng = np.random.default_rng(1)
        n_tail = int(round(0.19 * b))
        y = torch.from_numpy(np.concatenate([rng.integers(0, st["num_head"], b - n_tail),
                                             st["num_head"] + rng.integers(0, st["num_tail"], n_tail)])).to(device)
        x = torch.randn(b, d, device=device, requires_grad=True)
        times = []
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if device.type == "cuda" else 0
        for i in range(6 if not smoke else 2):
            head.zero_grad(set_to_none=True)
            t = time.perf_counter()
            head(x, y).loss.backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t)
        peak = (torch.cuda.max_memory_allocated() - base) / 2**30 if device.type == "cuda" else float("nan")
        results[name] = (min(times), peak)
        del head
        if device.type == "cuda":
            torch.cuda.empty_cache()
    t0, m0 = results["softmax"]
    for name in ("dispersion-sample", "dispersion-batch"):
        t, m = results[name]
        emit(out, f"{name} vs softmax at {c:,} classes, d {d}, batch {b}, fwd+bwd", f"{1000 * t:.1f} ms, {m:.2f} GiB",
             f"{1000 * t0:.1f} ms, {m0:.2f} GiB", f"time {t / t0:.2f}x, peak memory {m / m0:.2f}x", "report", None)


def table(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    head = ("check", "measured", "reference", "ratio / difference", "tolerance", "ok")
    cells = [[r["check"], str(r["value"]), str(r["reference"]), str(r["diff"]), r["tolerance"],
              "-" if r["ok"] is None else ("PASS" if r["ok"] else "FAIL")] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    print(fmt.format(*head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print(fmt.format(*c))
    failed = [r for r in rows if r["ok"] is False]
    print(f"\n{len(rows)} rows, {len(failed)} failed")


if __name__ == "__main__":
    part, path = sys.argv[1], sys.argv[2]
    smoke = "--cpu-smoke" in sys.argv
    if part == "table":
        table(path)
        sys.exit(0)
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 comparisons: no TF32 matmuls
    torch.set_num_threads(int(os.environ.get("GPU_CHECK_THREADS", 2 if smoke else 8)))
    {"speed": part_speed, "amp": part_amp, "sharded": part_sharded, "dispersion": part_dispersion}[part](
        sizes(smoke), path, smoke)
