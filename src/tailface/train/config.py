"""Training configuration: the ``train:`` block of an experiment YAML (see docs/training.md)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from tailface.errors import ConfigError
from tailface.yaml_config import unknown_key

SCHEDULES = ("step", "multistep", "plateau")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64  # global batch: split evenly across ranks under DDP
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "multistep"  # step | multistep | plateau
    milestones: list[int] = field(default_factory=list)  # multistep: epochs where lr *= gamma
    step_size: int = 10  # step: lr *= gamma every step_size epochs
    gamma: float = 0.1
    plateau_patience: int = 2  # plateau: epochs without improvement of the epoch's mean loss
    plateau_factor: float = 0.1
    warmup_epochs: float = 0.0  # linear warm-up from lr/warmup_steps to lr, fractions allowed
    amp: bool = False  # mixed precision, CUDA only (ignored with a note on CPU)
    clip_grad_norm: float | None = None
    seed: int = 0
    num_workers: int = 0
    image_size: int | None = None  # None: the model's input size
    flip: bool = True  # random horizontal flip of training images
    sampler: dict[str, Any] | None = None  # {name: ..., **kwargs} for create_sampler; None: random
    log_every: int = 20  # steps between progress/CSV updates
    checkpoint_every: int = 0  # steps between last.pt writes (0: at the end of each epoch only)
    device: str = "auto"  # auto | cpu | cuda
    tensorboard: bool = False
    max_steps: int | None = None  # stop after this many optimizer steps (tests, smoke runs)
    progress: bool = True  # tqdm progress bar

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "train") -> TrainConfig:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise unknown_key(where, unknown[0], known)
        if isinstance(d.get("sampler"), str):
            d["sampler"] = {"name": d["sampler"]}
        hints = typing.get_type_hints(cls)
        for name, value in d.items():
            if not _has_type(value, hints[name]):
                raise ConfigError(f"{where}: {name} must be {_type_text(hints[name])}, got {value!r}")
        cfg = cls(**d)
        cfg.validate(where)
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> TrainConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def validate(self, where: str = "train") -> None:
        def bad(msg):
            raise ConfigError(f"{where}: {msg}")

        if self.schedule not in SCHEDULES:
            bad(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.device not in DEVICES:
            bad(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not (isinstance(self.epochs, int) and self.epochs > 0):
            bad(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size > 0):
            bad(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.lr > 0:
            bad(f"lr must be > 0, got {self.lr}")
        if self.warmup_epochs < 0:
            bad(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.step_size <= 0:
            bad(f"step_size must be > 0, got {self.step_size}")
        if list(self.milestones) != sorted(self.milestones):
            bad(f"milestones must be increasing, got {self.milestones}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            bad(f"clip_grad_norm must be > 0 or null, got {self.clip_grad_norm}")
        if self.log_every <= 0:
            bad(f"log_every must be > 0, got {self.log_every}")
        if self.max_steps is not None and self.max_steps <= 0:
            bad(f"max_steps must be > 0 or null, got {self.max_steps}")
        if self.sampler is not None and not (isinstance(self.sampler, dict) and "name" in self.sampler):
            bad(f"sampler must be a name or a mapping with 'name', got {self.sampler!r}")


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field's annotation (an int is a float; a bool is no number)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def _type_text(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_text(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) is list:
        return f"a list of {_type_text(typing.get_args(hint)[0]).removeprefix('an ').removeprefix('a ')}s"
    return "a mapping" if typing.get_origin(hint) is dict else getattr(hint, "__name__", str(hint))
