"""``fit``: SGD training of a backbone + classification head on a FaceSet, resumable, DDP-ready.

Run as is for one process, or under ``torchrun --nproc_per_node N`` (the process group is joined
from the environment). See docs/training.md.
"""

from __future__ import annotations

import functools
import os
import random
import sys
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

import tailface
from tailface import faults
from tailface.data import workers
from tailface.data.decoded import decoded_in_memory
from tailface.data.faceset import FaceSet
from tailface.data.samplers import RandomSampler, create_sampler
from tailface.data.tensors import TrainBatches, epoch_batches, normalize
from tailface.errors import ConfigError, TrainingDiverged
from tailface.heads.base import HeadOutput
from tailface.models import resolve_image_size
from tailface.train import distributed as ddp
from tailface.train import sharded as shd
from tailface.train.checkpoint import load_checkpoint, save_atomic, spec_of, template_meta
from tailface.train.config import TrainConfig
from tailface.train.log import RunningMean, TrainLog
from tailface.train.schedule import LRSchedule
from tailface.train.state import TrainState


class _Joint(nn.Module):
    """Backbone + head as one module, so that one DDP wrapper reduces all gradients.

    The image hook: a head (objective) that defines ``forward_images(model, images, labels) ->
    HeadOutput`` runs the backbone itself (e.g. on two views of each pair and beside a second
    network: Semi-Siamese Training, ``method/sst.py``); it is called with the bare backbone, inside
    the one (DDP) forward of the step. Other heads get ``head(model(images), labels)``."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, images, labels):
        forward_images = getattr(self.head, "forward_images", None)
        if callable(forward_images):
            return forward_images(self.model, images, labels)
        return self.head(self.model(images), labels)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG state in plain types (tensors, ints, floats, tuples), so that checkpoints load
    with ``torch.load(weights_only=True)``: numpy's legacy state as its five fields, the keys as
    an int64 tensor."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`'s states; also reads checkpoints of tailface <= 0.1.0, whose
    numpy state is the tuple of ``np.random.get_state()``."""
    random.setstate(state["python"])
    np_state = state["numpy"]
    if isinstance(np_state, dict):
        np_state = (np_state["name"], np.asarray(np_state["keys"], dtype=np.int64).astype(np.uint32),
                    np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_worker(worker_id: int, base: int) -> None:
    seed = (base + worker_id) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but CUDA is not available")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _make_sampler(cfg: TrainConfig, faceset: FaceSet, world_size: int):
    if cfg.sampler is None:
        return RandomSampler(faceset.labels, cfg.seed)
    kwargs = dict(cfg.sampler)
    name = kwargs.pop("name")
    kwargs.setdefault("seed", cfg.seed)
    if name == "pk":
        p, k = int(kwargs.get("p", 0)), int(kwargs.get("k", 0))
        if p <= 0 or k <= 0 or cfg.batch_size % (p * k) or (cfg.batch_size // world_size) % k:
            raise ConfigError(f"train.batch_size {cfg.batch_size} must be a multiple of sampler p*k = {p * k},"
                              f" and each of the {world_size} process slices a multiple of k = {k}, so that"
                              " batches hold whole identity groups")
    try:
        return create_sampler(name, np.asarray(faceset.labels), **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"train.sampler {name!r}: {exc}") from None


def image_size_for(cfg: TrainConfig, model_spec: dict | None) -> tuple[int, int]:
    """Training image size: :func:`tailface.models.resolve_image_size` of the model's spec."""
    if not model_spec:  # a model not built by build_model
        return resolve_image_size(None, None, cfg.image_size)
    return resolve_image_size(model_spec["name"], model_spec.get("kwargs", {}).get("input_size"), cfg.image_size)


def fit(model: nn.Module, head: nn.Module, faceset: FaceSet, cfg: TrainConfig, out_dir,
        sampler=None, model_spec: dict | None = None, head_spec: dict | None = None,
        extra_meta: dict | None = None, validator=None) -> Path:
    """Train ``model`` + ``head`` on ``faceset``; returns ``out_dir/final.pt``.

    ``out_dir/last.pt`` (written atomically every ``cfg.checkpoint_every`` steps and at each epoch
    end) holds everything needed to continue; when present, training resumes from it, mid-epoch
    included, and reproduces the uninterrupted run step for step (CPU, same threads).
    ``model_spec`` (``{"name", "kwargs"}`` for ``create_model``) defaults to the model's
    ``tailface_spec`` attribute (set by :func:`tailface.train.checkpoint.build_model`).
    ``validator`` (optional): a callable ``validator(model, step, image_size=, device=) -> {metric:
    value}`` with an int attribute ``every``; it runs on the main process every ``every`` steps and
    after the last step, its results go to ``val.csv`` (and TensorBoard); e.g.
    :func:`tailface.eval.during_training.make_validator`.
    """
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
    info = ddp.init_distributed(device.type == "cuda")
    try:
        trainer = Trainer(model, head, faceset, cfg, Path(out_dir), device, info, sampler,
                          model_spec or spec_of(model), head_spec or spec_of(head), extra_meta, validator)
        return trainer.run()
    finally:
        ddp.shutdown(info)


class Trainer:
    """One training run: set-up and resume in ``__init__``, the optimisation loop in :meth:`run`,
    the bookkeeping (train state, log window, checkpoints) in small methods around it."""

    def __init__(self, model: nn.Module, head: nn.Module, faceset: FaceSet, cfg: TrainConfig, out_dir: Path,
                 device: torch.device, info: ddp.DistInfo, sampler=None, model_spec: dict | None = None,
                 head_spec: dict | None = None, extra_meta: dict | None = None, validator=None):
        self.model, self.head, self.faceset, self.cfg, self.out_dir = model, head, faceset, cfg, out_dir
        self.validator = validator
        self.device, self.info = device, info
        self.use_amp = cfg.amp and device.type == "cuda"
        if info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        if device.type == "cpu":
            torch.set_flush_denormal(True)  # margin heads hit denormals on CPU: ~2x slower without
        if cfg.amp and not self.use_amp:
            self.say("amp is for CUDA only; training in float32 on CPU")
        self.sharded = shd.is_sharded(head)  # class-sharded head: this rank's rows only (train/sharded.py)
        num_classes = cast(torch.Tensor, head.weight).shape[0] if hasattr(head, "weight") else None
        if self.sharded:
            num_classes = cast(int, head.num_classes)
        if num_classes is not None and num_classes != faceset.num_classes:
            raise ConfigError(f"head has {num_classes} classes but {faceset.source} has {faceset.num_classes}")
        if cfg.batch_size % info.world_size:
            raise ConfigError(f"train.batch_size {cfg.batch_size} is not divisible by {info.world_size} processes")

        seed_everything(cfg.seed)
        self.image_size = image_size_for(cfg, model_spec)
        self.sampler = sampler if sampler is not None else _make_sampler(cfg, faceset, info.world_size)
        self.steps_per_epoch = len(self.sampler) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"{faceset.source}: {len(self.sampler)} images per epoch, fewer than one batch "
                              f"of {cfg.batch_size}")
        model.to(device)
        head.to(device)
        self.params = [p for p in list(model.parameters()) + list(head.parameters()) if p.requires_grad]
        self.optimizer = torch.optim.SGD(self.params, lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.schedule = LRSchedule(cfg, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.meta = {"model_spec": model_spec, "head_spec": head_spec, "num_classes": faceset.num_classes,
                     "class_names": list(faceset.class_names), "image_size": list(self.image_size),
                     "config": cfg.to_dict(), "world_size": info.world_size, "source": str(faceset.source),
                     "tailface_version": tailface.__version__, **template_meta(faceset), **(extra_meta or {})}
        self.state = TrainState()
        self._batch_source: FaceSet | None = None  # batch_source(): decided on the first epoch
        self.last_path = out_dir / "last.pt"
        self.saved_step = 0  # the step last.pt holds
        if self.last_path.exists():
            self.resume()
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            self.total_steps = min(self.total_steps, cfg.max_steps)

    def say(self, msg: str) -> None:
        if self.info.is_main:
            print(f"tailface train: {msg}", file=sys.stderr)

    def resume(self) -> None:
        ckpt = load_checkpoint(self.last_path)
        _check_compatible(ckpt["meta"], self.meta, self.last_path)
        self.model.load_state_dict(ckpt["model"])
        if self.sharded:  # the whole classifier and its momentum in class order, any world size
            shd.load_head_state(cast(shd.ShardedHead, self.head), ckpt["head"], ckpt.get("sharded_head"))
            shd.load_optimizer_state(self.optimizer, cast(shd.ShardedHead, self.head), ckpt["optimizer"])
        else:
            self.head.load_state_dict(ckpt["head"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state.load_state_dict(ckpt)
        set_rng_state(ckpt["rng"])
        self.saved_step = self.state.global_step
        self.say(f"resuming from {self.last_path} at epoch {self.state.epoch}, step {self.state.global_step}")

    def head_state(self) -> tuple[dict | None, dict]:
        """The head's checkpoint entries: ``(head state, extra keys)``; a sharded head's rows are
        gathered whole in class order (every rank takes part; None on the other ranks)."""
        if not self.sharded:
            return self.head.state_dict(), {}
        head = cast(shd.ShardedHead, self.head)
        return shd.head_state(head), {"sharded_head": shd.sharding_state(head)}

    def save_last(self) -> None:
        head, extra = self.head_state()
        optimizer = (shd.optimizer_state(self.optimizer, cast(shd.ShardedHead, self.head)) if self.sharded
                     else self.optimizer.state_dict())
        if self.info.is_main:
            save_atomic({"model": self.model.state_dict(), "head": head,
                         "optimizer": optimizer, "schedule": self.schedule.state_dict(),
                         "scaler": self.scaler.state_dict(), **self.state.state_dict(), "rng": rng_state(),
                         "meta": self.meta, **extra}, self.last_path)
        self.saved_step = self.state.global_step

    def save_final(self) -> Path:
        final_path = self.out_dir / "final.pt"
        head, extra = self.head_state()
        if self.info.is_main:
            save_atomic({"model": self.model.state_dict(), "head": head, **extra,
                         "meta": {**self.meta, "epochs_done": self.state.epoch,
                                  "global_step": self.state.global_step}}, final_path)
            self.say(f"wrote {final_path} ({self.state.global_step} steps)")
        ddp.barrier(self.info)
        return final_path

    def start_epoch(self, epoch: int) -> None:
        """The epoch hook: ``head.set_epoch(epoch)`` for a head that defines it (e.g. deferred
        re-weighting), before the epoch's first step, also when resuming in the middle of it; on
        every rank, sharded or not. Heads without it are not touched."""
        set_epoch = getattr(self.head, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)

    def report_epoch(self, log: TrainLog | None) -> None:
        """The end-of-epoch report hook: ``head.epoch_report() -> {name: value}`` for a head that
        defines it (VPL: the share of tail classes with a live memory entry), after each full epoch's
        last step, on every rank (a sharded head reduces over its ranks); the main process writes
        the numbers to ``epochs.csv`` (and TensorBoard) and says them. Other heads are not touched."""
        report = getattr(self.head, "epoch_report", None)
        if not callable(report):
            return
        results = report()
        if log is not None:
            log.write_epoch_report(self.state.epoch, self.state.global_step, results)
        self.say(f"epoch {self.state.epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))

    def batch_source(self) -> tuple[FaceSet, int]:
        """The set the batches are cut from and the loader's worker count: the training set decoded
        once into memory at the input size when it fits (data/decoded.py: the same bytes as reading
        it every epoch; no workers needed), else the set itself, read every epoch by
        ``cfg.num_workers`` workers."""
        if self._batch_source is None:
            with tqdm(total=len(self.faceset), unit="img", desc="decoding", leave=False, dynamic_ncols=True,
                      disable=not (self.info.is_main and self.cfg.progress)) as bar:
                decoded = decoded_in_memory(self.faceset, self.image_size, bar.update)
            if decoded is not None:
                h, w = self.image_size
                self.say(f"{len(self.faceset)} images decoded once at {h}x{w} into memory "
                         f"({decoded.images.nbytes / 2**20:.0f} MiB); batches read from it, without workers")
            self._batch_source = decoded or self.faceset
        return self._batch_source, 0 if self._batch_source is not self.faceset else self.cfg.num_workers

    def epoch_loader(self, epoch: int) -> tuple[torch.utils.data.DataLoader, int]:
        """The DataLoader of this rank's remaining batches of ``epoch``, and the epoch's batch count."""
        cfg = self.cfg
        source, num_workers = self.batch_source()
        batches = epoch_batches(self.sampler, epoch, cfg.batch_size)
        dataset = TrainBatches(source, batches, epoch, self.image_size, cfg.seed, cfg.flip,
                               self.info.rank, self.info.world_size)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=None, sampler=range(self.state.step_in_epoch, len(batches)),
            num_workers=num_workers, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed + epoch),
            worker_init_fn=functools.partial(_seed_worker, base=cfg.seed * 100_003 + epoch * 1_009),
            prefetch_factor=4 if num_workers else None)
        return loader, len(batches)

    def step(self, joint: nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float) -> HeadOutput:
        """One optimizer step at learning rate ``lr``."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images = normalize(images.to(self.device, non_blocking=True))
        labels = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            out = joint(images, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        if self.sharded and self.info.enabled:  # DDP's mean of the ranks' shares -> their sum
            shd.sum_replica_grads(self.model.parameters(), self.info.world_size)
        if self.sharded and self.use_amp:
            shd.share_nonfinite(cast(shd.ShardedHead, self.head))
        if self.cfg.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            if self.sharded:  # the norm over the backbone and every rank's rows
                shd.clip_grad_norm_(list(self.model.parameters()), cast(shd.ShardedHead, self.head),
                                    self.cfg.clip_grad_norm)
            else:
                nn.utils.clip_grad_norm_(self.params, self.cfg.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return out

    def diverged(self, loss: float, lr: float) -> None:
        """Stop at the first non-finite loss, before anything of this step is saved: ``last.pt``
        (the last good state) is kept as it is, no ``final.pt`` is written."""
        kept = (f"{self.last_path} (after step {self.saved_step}) is kept unchanged" if self.last_path.is_file()
                else "no checkpoint was written yet")
        raise TrainingDiverged(f"{self.out_dir}: training diverged: loss {loss} at step {self.state.global_step} "
                               f"(epoch {self.state.epoch}, lr {lr:.3g}); {kept}; lower train.lr, add "
                               f"train.warmup_epochs or train.clip_grad_norm, then rerun")

    def write_log_row(self, window: RunningMean, log: TrainLog | None, bar: tqdm, lr: float) -> None:
        mean_loss = window.mean_loss()  # finite: every step's loss was checked (diverged)
        acc = window.mean_acc()
        speed = window.images_per_s(self.cfg.batch_size)
        if log is not None:
            log.write(self.state.epoch, self.state.global_step, lr, mean_loss, acc, speed)
            bar.set_postfix(epoch=self.state.epoch, loss=f"{mean_loss:.4f}",
                            acc="-" if acc is None else f"{acc:.3f}", img_s=f"{speed:.0f}", refresh=False)
        bar.update(window.steps)
        window.reset()

    def validate(self, log: TrainLog | None) -> None:
        """Run the validator on the main process (the backbone alone, in eval mode) and log it."""
        if self.validator is None or not self.info.is_main:
            return
        results = self.validator(self.model, self.state.global_step, image_size=self.image_size, device=self.device)
        if log is not None:
            log.write_validation(self.state.epoch, self.state.global_step, results)
        self.say(f"step {self.state.global_step}: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))

    def run(self) -> Path:
        cfg, state = self.cfg, self.state
        joint: nn.Module = _Joint(self.model, self.head)
        if self.info.enabled and self.sharded:
            # only the backbone in DDP (the head's rows differ per rank); see step() for its gradients
            backbone = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            joint = _Joint(backbone, self.head)
        elif self.info.enabled:
            joint = nn.parallel.DistributedDataParallel(
                joint, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        joint.train()
        log = TrainLog(self.out_dir, state.global_step, cfg.tensorboard) if self.info.is_main else None
        bar = tqdm(total=self.total_steps, initial=min(state.global_step, self.total_steps), unit="step",
                   disable=not (self.info.is_main and cfg.progress), dynamic_ncols=True, leave=False)
        window = RunningMean(self.device)
        epoch_loss = torch.zeros((), dtype=torch.float64, device=self.device)  # not yet folded into state
        epoch_steps = 0

        def fold_epoch_loss() -> None:
            nonlocal epoch_steps
            state.add_epoch_loss(epoch_loss.item(), epoch_steps)
            epoch_loss.zero_()
            epoch_steps = 0

        stopped = cfg.max_steps is not None and state.global_step >= cfg.max_steps
        try:
            while state.epoch < cfg.epochs and not stopped:
                self.start_epoch(state.epoch)
                loader, num_batches = self.epoch_loader(state.epoch)
                window.reset()
                for images, labels in workers.iterate(loader):  # a worker's error as its one-line self
                    lr = self.schedule.lr(state.global_step)
                    out = self.step(joint, images, labels, lr)
                    state.global_step += 1
                    state.step_in_epoch += 1
                    loss = out.loss.detach().float()
                    if not bool(torch.isfinite(loss)):
                        self.diverged(float(loss), lr)
                    epoch_loss += loss
                    epoch_steps += 1
                    window.add(loss, _accuracy(out))
                    faults.point(f"step.{self.meta.get('stage', 'train')}")
                    stopped = cfg.max_steps is not None and state.global_step >= cfg.max_steps
                    end_of_epoch = state.step_in_epoch == num_batches
                    if state.global_step % cfg.log_every == 0 or end_of_epoch or stopped:
                        self.write_log_row(window, log, bar, lr)
                    if self.validator is not None and (state.global_step % self.validator.every == 0 or stopped
                                                       or (end_of_epoch and state.epoch == cfg.epochs - 1)):
                        self.validate(log)
                    if end_of_epoch or stopped:
                        break
                    if cfg.checkpoint_every and state.global_step % cfg.checkpoint_every == 0:
                        fold_epoch_loss()
                        self.save_last()
                fold_epoch_loss()
                if state.step_in_epoch == num_batches:
                    self.report_epoch(log)
                    mean = torch.tensor(state.epoch_mean_loss(), dtype=torch.float64, device=self.device)
                    self.schedule.end_epoch(float(ddp.all_reduce_mean(mean, self.info)))
                    state.next_epoch()
                self.save_last()
        finally:
            bar.close()
            if log is not None:
                log.close()
        return self.save_final()


def _accuracy(out: HeadOutput) -> torch.Tensor | None:
    """Training accuracy of a step as a device tensor (= ``HeadOutput.accuracy()``, no sync)."""
    if out.logits is None or out.targets is None:
        return None
    return (out.logits.detach().argmax(1) == out.targets).float().mean()


def _check_compatible(saved: dict, current: dict, path: Path) -> None:
    for key in ("model_spec", "num_classes", "image_size"):
        if saved.get(key) != current.get(key):
            raise ConfigError(f"{path}: cannot resume, {key} differs (checkpoint {saved.get(key)!r}, "
                              f"now {current.get(key)!r}); use another --out or delete the checkpoint")
