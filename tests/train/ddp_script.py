"""Run by test_ddp.py, alone or under torchrun: trains TinyNet for a few steps into OUT."""

import sys

import torch
from conftest import TinyNet, random_faceset

from tailface.heads import create_head
from tailface.train import TrainConfig, fit

if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, head = TinyNet(), create_head("softmax", 8, 6)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1, warmup_epochs=0.5, milestones=[1], log_every=1,
                      image_size=16, progress=False, device="cpu", max_steps=int(sys.argv[2]))
    fit(model, head, random_faceset(), cfg, sys.argv[1])
