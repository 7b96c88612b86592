"""Soak test of kill and resume (outside CI; docs/training.md, "Kill and resume"; scripts/soak.sh).

Runs the built-in pipeline (``tailface run`` on the synthetic data, a reduced budget) once
uninterrupted as the reference, then again in another folder, killing it with SIGKILL after a
random delay ``--kills`` times in a row (each time resumed with the same command), lets the last
run finish, and compares every final checkpoint tensor for tensor and the metrics. Exit 0 when
bit-identical; prints one summary line and writes it to ``OUT/soak.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

CONFIG = {
    "name": "soak",
    "data": {"train": "synthetic", "options": {"num_identities": 120, "image_size": 16, "max_images": 40}},
    "model": {"name": "small", "input_size": 16, "embedding_size": 32, "width": 8},
    "head": {"name": "softmax"},
    "train": {"epochs": 2, "batch_size": 32, "checkpoint_every": 3, "progress": False, "seed": 0},
    "method": {"budget": 2, "evaluate": ["ours"]},
    "eval": {"protocols": ["synthetic"], "batch_size": 256},
}


def command(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tailface.cli", "run", str(config), "--out", str(out)]


def env() -> dict:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def tensors(path: Path) -> dict:
    ckpt = torch.load(path, weights_only=True)
    return {**{"m." + k: v for k, v in ckpt["model"].items()}, **{"h." + k: v for k, v in ckpt["head"].items()}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/soak"))
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=12, help="steps of each training stage")
    p.add_argument("--min-delay", type=float, default=1.0, help="seconds before a kill, at least")
    p.add_argument("--max-delay", type=float, default=6.0, help="seconds before a kill, at most")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    args = p.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    config = args.out / "soak.yaml"
    doc = {**CONFIG, "train": {**CONFIG["train"], "max_steps": args.max_steps}}
    config.write_text(yaml.safe_dump(doc))
    reference, killed = args.out / "reference", args.out / "killed"
    start = time.time()
    if not (reference / "report.md").is_file():
        subprocess.run(command(config, reference), env=env(), check=True, capture_output=True)
    reference_s = time.time() - start
    delays, finished_early = [], 0
    start = time.time()
    max_delay = args.max_delay
    while len(delays) < args.kills:
        delay = rng.uniform(args.min_delay, max_delay)
        proc = subprocess.Popen(command(config, killed), env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=delay)
            finished_early += 1  # the run ended before its kill: start over in a fresh folder
            if proc.returncode != 0:
                print(f"soak: a resumed run failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            if finished_early > 5:
                print("soak: the run keeps finishing before its kills; raise --max-steps", file=sys.stderr)
                return 1
            subprocess.run(["rm", "-rf", str(killed)], check=True)
            delays.clear()
            max_delay = max(args.min_delay + 0.5, 0.7 * max_delay)  # kill sooner: 20 in a row must fit
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            delays.append(round(delay, 2))
    final = subprocess.run(command(config, killed), env=env(), capture_output=True, text=True)
    if final.returncode != 0:
        print(final.stderr[-3000:], file=sys.stderr)
        return 1
    soak_s = time.time() - start
    different = []
    for stage in ("base", "prototype", "dispersion"):
        a, b = tensors(reference / stage / "final.pt"), tensors(killed / stage / "final.pt")
        if a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in a):
            different.append(stage)
    ma = json.loads((reference / "eval" / "ours" / "metrics.json").read_text())["synthetic"]
    mb = json.loads((killed / "eval" / "ours" / "metrics.json").read_text())["synthetic"]
    if ma != mb:
        different.append("metrics")
    result = {"kills": len(delays), "delays_s": delays, "restarts_after_an_early_finish": finished_early,
              "max_steps": args.max_steps, "bit_identical": not different, "different": different,
              "reference_s": round(reference_s, 1), "soak_s": round(soak_s, 1), "torch": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    (args.out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"soak: {len(delays)} kills in a row at random points, resumed each time: "
          f"{'bit-identical' if not different else 'DIFFERENT in ' + ', '.join(different)} "
          f"({soak_s:.0f} s; reference run {reference_s:.0f} s)")
    return 0 if not different else 1


if __name__ == "__main__":
    sys.exit(main())
