"""Kill and resume Semi-Siamese Training: ``tailface run`` of a tiny SST config is killed with
SIGKILL mid-epoch and while ``last.pt`` is being replaced, resumed with the same command each
time, and ends with the weights of an uninterrupted run, tensor for tensor: the probe, the gallery
network, the prototype queue, its labels and pointer and the step count (``last.pt`` holds them
all); the final model is the probe, ``load_model`` rebuilds it and ``tailface eval`` scores it."""

from __future__ import annotations

import json
import signal

import torch
import yaml

from tailface.experiment import ExperimentConfig, run_experiment
from tailface.train.checkpoint import load_model

from ._helpers import TINY_DATA, TINY_MODEL, TINY_TRAIN, assert_same_weights, cli

# 8 pairs a step on 12 slots: the queue wraps at the second step
TINY_SST = {"name": "tiny-sst", "data": TINY_DATA, "model": TINY_MODEL, "train": {**TINY_TRAIN, "max_steps": 5},
            "sst": {"queue_size": 12, "momentum": 0.9}, "eval": {"protocols": ["synthetic"], "batch_size": 256}}
KILLS = [
    "step.train:2",           # mid-epoch (last.pt holds step 1)
    "tmp-written.last.pt:2",  # resumed at step 1: last.pt of step 3 written to its temporary file, not renamed
]
STATE = ["queue", "queue_labels", "queue_ptr", "steps", "gallery.body.0.weight", "gallery.head.4.running_mean"]


def test_sst_killed_mid_epoch_and_mid_checkpoint_resumes_bit_identical(tmp_path):
    reference = tmp_path / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_experiment(ExperimentConfig.from_dict(TINY_SST), reference)
    finally:
        torch.set_num_threads(threads)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TINY_SST))
    out = tmp_path / "killed"
    for kill in KILLS:
        proc = cli(["run", str(config), "--out", str(out)], kill_at=kill)
        assert proc.returncode == -signal.SIGKILL, f"{kill}: not killed (rc {proc.returncode})\n{proc.stderr[-3000:]}"
    last = torch.load(out / "train" / "last.pt", weights_only=True)
    assert set(STATE) <= set(last["head"]) and int(last["head"]["steps"]) == last["global_step"] == 2
    proc = cli(["run", str(config), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stderr and not list(out.rglob("*.tmp*"))

    assert_same_weights(reference / "train" / "final.pt", out / "train" / "final.pt")  # model and head state
    final = torch.load(out / "train" / "final.pt", weights_only=True)
    assert int(final["head"]["steps"]) == 5 and int(final["head"]["queue_ptr"]) == 5 * 8 % 12
    assert (final["head"]["queue_labels"] >= 0).all()
    model, meta = load_model(out / "train" / "final.pt")  # the probe, as tailface eval / embed load it
    for key, value in model.state_dict().items():
        assert torch.equal(value, final["model"][key]), key
    assert meta["head_spec"] is None  # no classifier to rebuild
    a = json.loads((reference / "eval" / "metrics.json").read_text())
    b = json.loads((out / "eval" / "metrics.json").read_text())
    assert a["synthetic"] == b["synthetic"]
