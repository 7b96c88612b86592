"""``fit``: SGD training of a backbone + classification head on a FaceSet, resumable, DDP-ready.

Run as is for one process, or under ``torchrun --nproc_per_node N`` (the process group is joined
from the environment). See docs/training.md.
"""

from __future__ import annotations

import functools
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

import tailface
from tailface.data.faceset import FaceSet
from tailface.errors import ConfigError, TailfaceError
from tailface.train import distributed as ddp
from tailface.train.batches import EpochBatchDataset, RandomOrder, epoch_batches, normalize
from tailface.train.checkpoint import load_checkpoint, save_atomic, spec_of
from tailface.train.config import TrainConfig
from tailface.train.log import TrainLog
from tailface.train.schedule import LRSchedule


class _Joint(nn.Module):
    """Backbone + head as one module, so that one DDP wrapper reduces all gradients."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, images, labels):
        return self.head(self.model(images), labels)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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


def _image_size(cfg: TrainConfig, model_spec: dict | None) -> tuple[int, int]:
    size = cfg.image_size
    if size is None and model_spec:
        size = model_spec.get("kwargs", {}).get("input_size")
        if size is None:
            from tailface.models import default_input_size

            size = default_input_size(model_spec["name"])
    size = size or 112
    return (size, size) if isinstance(size, int) else tuple(size)


def _make_sampler(cfg: TrainConfig, faceset: FaceSet):
    if cfg.sampler is None:
        return RandomOrder(len(faceset), cfg.seed)
    from tailface.data.samplers import create_sampler

    kwargs = dict(cfg.sampler)
    name = kwargs.pop("name")
    kwargs.setdefault("seed", cfg.seed)
    if name == "pk":
        p, k = int(kwargs.get("p", 0)), int(kwargs.get("k", 0))
        world = int(os.environ.get("WORLD_SIZE", 1))
        if p <= 0 or k <= 0 or cfg.batch_size % (p * k) or (cfg.batch_size // world) % k:
            raise ConfigError(f"train.batch_size {cfg.batch_size} must be a multiple of sampler p*k = {p * k},"
                              f" and each of the {world} process slices a multiple of k = {k}, so that"
                              " batches hold whole identity groups")
    try:
        return create_sampler(name, np.asarray(faceset.labels), **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"train.sampler {name!r}: {exc}") from None


def fit(model: nn.Module, head: nn.Module, faceset: FaceSet, cfg: TrainConfig, out_dir,
        sampler=None, model_spec: dict | None = None, head_spec: dict | None = None,
        extra_meta: dict | None = None) -> Path:
    """Train ``model`` + ``head`` on ``faceset``; returns ``out_dir/final.pt``.

    ``out_dir/last.pt`` (written atomically every ``cfg.checkpoint_every`` steps and at each epoch
    end) holds everything needed to continue; when present, training resumes from it, mid-epoch
    included, and reproduces the uninterrupted run step for step (CPU, same threads).
    ``model_spec`` (``{"name", "kwargs"}`` for ``create_model``) defaults to the model's
    ``tailface_spec`` attribute (set by :func:`tailface.train.checkpoint.build_model`).
    """
    out_dir = Path(out_dir)
    model_spec = model_spec or spec_of(model)
    head_spec = head_spec or spec_of(head)
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
    info = ddp.init_distributed(device.type == "cuda")
    try:
        return _fit(model, head, faceset, cfg, out_dir, sampler, model_spec, head_spec, extra_meta, device, info)
    finally:
        ddp.shutdown(info)


def _fit(model, head, faceset, cfg, out_dir, sampler, model_spec, head_spec, extra_meta, device, info) -> Path:
    main = info.is_main
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    say = (lambda msg: print(f"tailface train: {msg}", file=sys.stderr)) if main else (lambda msg: None)
    use_amp = cfg.amp and device.type == "cuda"
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # margin heads hit denormals on CPU: ~2x slower without
    if cfg.amp and not use_amp:
        say("amp is for CUDA only; training in float32 on CPU")
    num_classes = head.weight.shape[0] if hasattr(head, "weight") else None
    if num_classes is not None and num_classes != faceset.num_classes:
        raise ConfigError(f"head has {num_classes} classes but {faceset.source} has {faceset.num_classes}")
    if cfg.batch_size % info.world_size:
        raise ConfigError(f"train.batch_size {cfg.batch_size} is not divisible by {info.world_size} processes")

    seed_everything(cfg.seed)
    image_size = _image_size(cfg, model_spec)
    sampler = sampler if sampler is not None else _make_sampler(cfg, faceset)
    steps_per_epoch = len(sampler) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"{faceset.source}: {len(sampler)} images per epoch, fewer than one batch "
                          f"of {cfg.batch_size}")

    model.to(device)
    head.to(device)
    params = [p for p in list(model.parameters()) + list(head.parameters()) if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    schedule = LRSchedule(cfg, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    meta = {"model_spec": model_spec, "head_spec": head_spec, "num_classes": faceset.num_classes,
            "class_names": list(faceset.class_names), "image_size": list(image_size),
            "config": cfg.to_dict(), "world_size": info.world_size, "source": str(faceset.source),
            "tailface_version": tailface.__version__, **(extra_meta or {})}

    epoch, step_in_epoch, global_step = 0, 0, 0
    epoch_loss = [0.0, 0]  # sum of step losses of the current epoch, steps
    last_path = out_dir / "last.pt"
    if last_path.exists():
        ckpt = load_checkpoint(last_path)
        _check_compatible(ckpt["meta"], meta, last_path)
        model.load_state_dict(ckpt["model"])
        head.load_state_dict(ckpt["head"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        scaler.load_state_dict(ckpt["scaler"])
        epoch, step_in_epoch, global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        epoch_loss = list(ckpt["epoch_loss"])
        set_rng_state(ckpt["rng"])
        say(f"resuming from {last_path} at epoch {epoch}, step {global_step}")

    def save_last():
        if main:
            save_atomic({"model": model.state_dict(), "head": head.state_dict(),
                         "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                         "scaler": scaler.state_dict(), "epoch": epoch, "step_in_epoch": step_in_epoch,
                         "global_step": global_step, "epoch_loss": list(epoch_loss), "rng": rng_state(),
                         "meta": meta}, last_path)

    joint = _Joint(model, head)
    if info.enabled:
        joint = nn.parallel.DistributedDataParallel(
            joint, device_ids=[device.index] if device.type == "cuda" else None)
    joint.train()
    log = TrainLog(out_dir, global_step, cfg.tensorboard) if main else None
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    bar = tqdm(total=total_steps, initial=min(global_step, total_steps), unit="step",
               disable=not (main and cfg.progress), dynamic_ncols=True, leave=False)
    stopped = cfg.max_steps is not None and global_step >= cfg.max_steps
    try:
        while epoch < cfg.epochs and not stopped:
            batches = epoch_batches(sampler, epoch, cfg.batch_size)
            dataset = EpochBatchDataset(faceset, batches, epoch, image_size, cfg.seed, cfg.flip,
                                        info.rank, info.world_size)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=None, sampler=range(step_in_epoch, len(batches)),
                num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                generator=torch.Generator().manual_seed(cfg.seed + epoch),
                worker_init_fn=functools.partial(_seed_worker, base=cfg.seed * 100_003 + epoch * 1_009),
                prefetch_factor=4 if cfg.num_workers else None)
            win_loss = torch.zeros((), device=device)
            win_acc = torch.zeros((), device=device)
            win_steps, win_acc_steps, win_start = 0, 0, time.perf_counter()
            ep_loss = torch.zeros((), dtype=torch.float64, device=device)
            ep_steps = 0
            for images, labels in loader:
                lr = schedule.lr(global_step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images = normalize(images.to(device, non_blocking=True))
                labels = labels.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    out = joint(images, labels)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(out.loss).backward()
                if cfg.clip_grad_norm is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                global_step += 1
                step_in_epoch += 1
                loss = out.loss.detach().float()
                win_loss += loss
                ep_loss += loss
                win_steps += 1
                ep_steps += 1
                if out.logits is not None and out.targets is not None:  # = HeadOutput.accuracy()
                    win_acc += (out.logits.detach().argmax(1) == out.targets).float().mean()
                    win_acc_steps += 1
                stopped = cfg.max_steps is not None and global_step >= cfg.max_steps
                end_of_epoch = step_in_epoch == len(batches)
                if global_step % cfg.log_every == 0 or end_of_epoch or stopped:
                    mean_loss = win_loss.item() / win_steps
                    if not np.isfinite(mean_loss):
                        raise TailfaceError(f"training diverged: loss {mean_loss} at step {global_step} "
                                            f"(lr {lr:.3g}); lower train.lr or add warm-up")
                    acc = win_acc.item() / win_acc_steps if win_acc_steps else None
                    speed = win_steps * cfg.batch_size / (time.perf_counter() - win_start)
                    if main:
                        log.write(epoch, global_step, lr, mean_loss, acc, speed)
                        bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.4f}",
                                        acc="-" if acc is None else f"{acc:.3f}", img_s=f"{speed:.0f}",
                                        refresh=False)
                    bar.update(win_steps)
                    win_loss.zero_()
                    win_acc.zero_()
                    win_steps, win_acc_steps, win_start = 0, 0, time.perf_counter()
                if end_of_epoch or stopped:
                    break
                if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0:
                    epoch_loss[0] += ep_loss.item()
                    epoch_loss[1] += ep_steps
                    ep_loss.zero_()
                    ep_steps = 0
                    save_last()
            epoch_loss[0] += ep_loss.item()
            epoch_loss[1] += ep_steps
            if step_in_epoch == len(batches):
                mean = torch.tensor(epoch_loss[0] / max(1, epoch_loss[1]), dtype=torch.float64, device=device)
                schedule.end_epoch(float(ddp.all_reduce_mean(mean, info)))
                epoch, step_in_epoch, epoch_loss = epoch + 1, 0, [0.0, 0]
            save_last()
    finally:
        bar.close()
        if log is not None:
            log.close()

    final_path = out_dir / "final.pt"
    if main:
        save_atomic({"model": model.state_dict(), "head": head.state_dict(),
                     "meta": {**meta, "epochs_done": epoch, "global_step": global_step}}, final_path)
        say(f"wrote {final_path} ({global_step} steps)")
    ddp.barrier(info)
    return final_path


def _check_compatible(saved: dict, current: dict, path: Path) -> None:
    for key in ("model_spec", "num_classes", "image_size"):
        if saved.get(key) != current.get(key):
            raise ConfigError(f"{path}: cannot resume, {key} differs (checkpoint {saved.get(key)!r}, "
                              f"now {current.get(key)!r}); use another --out or delete the checkpoint")
