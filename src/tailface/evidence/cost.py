"""What the cells of a ``tailface study`` will cost, estimated before any trains.

Two measured quantities and one count:

- **the rate**: a short timing of real training steps (:func:`measure_rate`): the AB cell's model
  and head, its batch size and image size, batches read from the data (decode, resize, normalise,
  forward, loss, backward, SGD step), one warm-up step then timed steps (at least ``MIN_STEPS``,
  until ``MIN_SECONDS`` have passed, at most ``MAX_STEPS``), with the torch threads each cell will
  have (``--jobs``); and one forward pass of a batch and its mirror (the
  evaluation's flip fusion). Seconds per training image and per evaluated image.
- **the work of a cell** (:func:`cell_work`): its image passes, ``epochs x`` the images of its
  training set in whole batches (at most ``max_steps`` batches), from its config: the method
  spreads the same epoch budget over its prototype and dispersion stages, both on the full set, so
  it counts as the full set trained for ``train.epochs``; and one evaluation pass over the
  held-out images.

A cell's estimate is ``passes x train rate + held-out images x eval rate``; the wall time is the sum
over the cells divided by ``--jobs``. Not counted: checkpoints, clustering, the first epoch's warm
caches, other processes on the machine. The progress across cells (:mod:`tailface.evidence.progress`)
corrects it with the cells' measured times as they finish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from tailface.data.faceset import FaceSet
from tailface.data.tensors import load_images, normalize
from tailface.data.training_set import training_set
from tailface.experiment.config import DataConfig, ExperimentConfig
from tailface.experiment.training import new_head, new_model, stage_class_stats
from tailface.train.checkpoint import SPEC_ATTR
from tailface.train.config import TrainConfig
from tailface.train.trainer import image_size_for, resolve_device

MIN_STEPS, MAX_STEPS, MIN_SECONDS = 2, 10, 2.0  # the timed training steps (after one warm-up step)


@dataclass(frozen=True)
class Rate:
    """Measured seconds per training image and per evaluated image (forward of it and its mirror)."""

    train_s: float
    eval_s: float
    steps: int
    batch: int
    threads: int
    device: str

    def text(self) -> str:
        return (f"{1000 * self.train_s:.2f} ms per training image, timed over {self.steps} steps of the AB model "
                f"at batch {self.batch} on {self.device} ({self.threads} torch thread(s), as each cell will have)")


@dataclass(frozen=True)
class Work:
    """A cell's work: training image passes and evaluated images."""

    passes: int
    evaluated: int

    def seconds(self, rate: Rate) -> float:
        return self.passes * rate.train_s + self.evaluated * rate.eval_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_rate(cfg: ExperimentConfig, data: FaceSet, threads: int) -> Rate:
    """Time a few training steps of ``cfg``'s model and head (its ``train`` stage's batch size,
    image size and device) on random batches of ``data`` with ``threads`` torch threads. The RNG
    states of torch and numpy are left as they were (the cells' seeds are not touched)."""
    train = cfg.stage_train(cfg.kind.training_stages(cfg)[-1])
    device = resolve_device(train.device)
    batch = min(train.batch_size, len(data))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # as the trainer does on CPU (margin heads hit denormals)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            model, head = new_model(cfg), new_head(cfg, stage_class_stats(cfg, data))
            model.to(device).train()
            head.to(device).train()
            size = image_size_for(train, getattr(model, SPEC_ATTR, None))
            params = [p for p in [*model.parameters(), *head.parameters()] if p.requires_grad]
            optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
            rng = np.random.default_rng(0)
            labels = np.asarray(data.labels)

            def step() -> None:
                idx = rng.choice(len(data), batch, replace=False)
                images = normalize(load_images(data, idx, size).to(device))
                loss = head(model(images), torch.as_tensor(labels[idx], device=device)).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            step()  # warm-up: allocations, kernels chosen
            _sync(device)
            start, steps = time.perf_counter(), 0
            while steps < MIN_STEPS or (steps < MAX_STEPS and time.perf_counter() - start < MIN_SECONDS):
                step()
                _sync(device)
                steps += 1
            train_s = (time.perf_counter() - start) / (steps * batch)
            model.eval()
            with torch.no_grad():
                images = normalize(load_images(data, rng.choice(len(data), batch, replace=False), size).to(device))
                start = time.perf_counter()
                model(torch.cat([images, images.flip(3)]))
                _sync(device)
                eval_s = (time.perf_counter() - start) / batch
    finally:
        torch.set_num_threads(before)
    return Rate(train_s, eval_s, steps, batch, threads, device.type)


def cell_work(doc: dict, pool: FaceSet, evaluated: int, where: str) -> Work:
    """The work of the cell whose config is ``doc`` (a YAML mapping) on ``pool``: ``epochs x`` the
    images of its training set in whole batches, at most ``max_steps`` batches; ``evaluated``
    images evaluated once."""
    train = TrainConfig.from_dict(doc.get("train"), f"{where}: train")
    images = len(training_set(pool, DataConfig.from_block(dict(doc.get("data") or {}), f"{where}: data")))
    steps = train.epochs * (images // train.batch_size)
    if train.max_steps:
        steps = min(steps, train.max_steps)
    return Work(steps * train.batch_size, evaluated)
