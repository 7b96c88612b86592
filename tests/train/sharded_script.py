"""Run by test_sharded_training.py, alone or under torchrun: jobs with class-sharded heads.

``python sharded_script.py JOB OUT STEPS [JOB OUT STEPS ...]``; every job runs in the one process
group (joined from the torchrun environment):

- ``arcface``: ``fit`` of TinyNet + a sharded ArcFace head (7 classes, batch 12) for STEPS steps
  (a ``last.pt`` in OUT is resumed, whatever world size wrote it);
- ``method-sample`` / ``method-batch``: the aggregate-and-disperse pipeline (``run_experiment``,
  ``head.sharded: true``) on tiny synthetic data, dispersion mode ``sample`` / ``batch``, STEPS
  steps per training stage, with the BN-free backbone ``test_tiny`` registered here.
"""

import sys

import torch
import torch.nn as nn
from conftest import TinyNet, random_faceset

from tailface.models import register_model
from tailface.train import TrainConfig, distributed, fit
from tailface.train.sharded import build_sharded_head

NUM_CLASSES = 7


@register_model("test_tiny", default_input_size=16, description="conv + linear, no batch norm (tests)")
def test_tiny(input_size: int = 16, embedding_size: int = 8, **kwargs) -> nn.Module:
    return TinyNet(input_size, embedding_size)


def arcface(out: str, steps: int) -> None:
    torch.manual_seed(0)
    model = TinyNet()
    head = build_sharded_head("arcface", 8, NUM_CLASSES, s=16.0, m=0.3, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=12, lr=0.1, warmup_epochs=0.5, milestones=[1], log_every=1,
                      image_size=16, progress=False, device="cpu", max_steps=steps, checkpoint_every=2)
    fit(model, head, random_faceset(n=96, classes=NUM_CLASSES), cfg, out)


def method(out: str, steps: int, mode: str) -> None:
    from tailface.experiment import ExperimentConfig, run_experiment

    cfg = {
        "name": "sharded-method",
        "data": {"train": "synthetic", "options": {"num_identities": 40, "image_size": 16, "max_images": 30}},
        "model": {"name": "test_tiny", "input_size": 16, "embedding_size": 8},
        "head": {"name": "cosface", "s": 16.0, "m": 0.2, "sharded": True},
        "train": {"epochs": 1, "batch_size": 16, "max_steps": steps, "progress": False, "seed": 0,
                  "device": "cpu", "lr": 0.05},
        "method": {"budget": 2, "evaluate": [], "mode": mode},
        "eval": {},
    }
    run_experiment(ExperimentConfig.from_dict(cfg), out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    info = distributed.init_distributed(False)  # one process group for every job
    try:
        args = sys.argv[1:]
        for job, out, steps in zip(args[::3], args[1::3], map(int, args[2::3])):
            if job == "arcface":
                arcface(out, steps)
            else:
                method(out, steps, job.removeprefix("method-"))
    finally:
        distributed.shutdown(info)
