"""Wall time of ``tailface reproduce table2`` (4 cells: softmax on A, AB, ABC, ABCD) with
``--jobs N`` against ``--jobs 1``, each cell cut to ``--steps`` training steps, then its
evaluation. ``--data cpu`` (default): the cpu profile as it is (CelebA training set, ``small`` at
32x32, BLUFR / LFW / MegaFace-proxy evaluation; needs ``tailface prepare celeba-train lfw``);
``--data synthetic``: the built-in data with the cpu profile's network (fixed costs, start-up and
evaluation, weigh more there). Every run starts from an empty folder; the order is interleaved
(1, N, 1, N, ...) and the ratio is that of the median wall times measured in this run.

    python benchmarks/bench_cells_at_once.py [--data cpu|synthetic] [--jobs 2] [--steps 600] [--reps 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def profile(data: str, steps: int) -> dict:
    train = {"max_steps": steps, "progress": False}
    if data == "cpu":
        return {"family": "celeba", "data": "celeba-train", "overrides": {"train": train}}
    return {"family": "synthetic", "data": "synthetic",
            "overrides": {"data": {"options": {"image_size": 32}},
                          "model": {"name": "small", "input_size": 32, "embedding_size": 128},
                          "train": {**train, "batch_size": 64, "num_workers": 2}}}


def wall(data: str, jobs: int, steps: int, folder: Path) -> float:
    path = folder / "bench.yaml"
    path.write_text("# bench_cells_at_once profile\n" + yaml.safe_dump(profile(data, steps)))
    out = folder / f"jobs{jobs}-{time.monotonic_ns()}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tailface.cli", "reproduce", "table2", "--profile", str(path),
                    "--jobs", str(jobs), "--out", str(out)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("cpu", "synthetic"), default="cpu")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], args.jobs: []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for jobs in (1, args.jobs):
                times[jobs].append(wall(args.data, jobs, args.steps, Path(tmp)))
                print(f"rep {rep}: --jobs {jobs}: {times[jobs][-1]:.1f} s", flush=True)
    one, many = statistics.median(times[1]), statistics.median(times[args.jobs])
    print(f"table2 (4 cells, {args.steps} steps each), {os.cpu_count()} CPUs, --data {args.data}")
    print(f"--jobs 1: median {one:.1f} s; --jobs {args.jobs}: median {many:.1f} s")
    print(f"speed-up --jobs {args.jobs} / --jobs 1: {one / many:.2f}x")


if __name__ == "__main__":
    main()
