import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent


def run(args, out, steps):
    skip = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(HERE))
    proc = subprocess.run([sys.executable, *args, str(HERE / "ddp_script.py"), str(out), str(steps)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\n"
                                  f"stderr:\n{proc.stderr[-4000:]}")


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    steps = 9  # crosses the warm-up, an epoch end (6 steps) and the lr milestone
    run([], tmp_path / "one", steps)
    run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], tmp_path / "two", steps)
    one = torch.load(tmp_path / "one" / "final.pt", weights_only=False)
    two = torch.load(tmp_path / "two" / "final.pt", weights_only=False)
    assert two["meta"]["world_size"] == 2 and one["meta"]["world_size"] == 1
    for part in ("model", "head"):
        for name, a in one[part].items():
            b = two[part][name]
            assert not torch.equal(a, torch.zeros_like(a))
            # tolerance: gradient means are summed in another order (per-rank means averaged)
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=f"{part}.{name}")
    # only rank 0 writes: one log, one row per step
    rows = (tmp_path / "two" / "train.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + steps
