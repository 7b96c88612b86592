"""Per-step learning rate: linear warm-up, then step / multistep decay by epoch, or plateau decay.

``lr(step)`` is a pure function of the global step for step/multistep; plateau keeps a scale that
:meth:`LRSchedule.end_epoch` lowers when the epoch's mean loss stops improving. The state
(plateau scale, best loss, bad epochs) is saved in checkpoints.
"""

from __future__ import annotations

import bisect
import math

from tailface.train.config import TrainConfig


class LRSchedule:
    def __init__(self, cfg: TrainConfig, steps_per_epoch: int):
        self.cfg = cfg
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.warmup_steps = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        self.plateau_scale = 1.0
        self.best_loss = math.inf
        self.bad_epochs = 0

    def lr(self, step: int) -> float:
        """Learning rate of global optimizer step ``step`` (0-based)."""
        cfg = self.cfg
        epoch = step // self.steps_per_epoch
        if cfg.schedule == "multistep":
            decay = cfg.gamma ** bisect.bisect_right(list(cfg.milestones), epoch)
        elif cfg.schedule == "step":
            decay = cfg.gamma ** (epoch // cfg.step_size)
        else:
            decay = self.plateau_scale
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return cfg.lr * decay * warm

    def end_epoch(self, mean_loss: float) -> None:
        """Plateau bookkeeping (mode min, relative threshold 1e-4, as torch's ReduceLROnPlateau)."""
        if self.cfg.schedule != "plateau":
            return
        if mean_loss < self.best_loss * (1 - 1e-4):
            self.best_loss = mean_loss
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.cfg.plateau_patience:
                self.plateau_scale *= self.cfg.plateau_factor
                self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"plateau_scale": self.plateau_scale, "best_loss": self.best_loss, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best_loss = float(state["best_loss"])
        self.bad_epochs = int(state["bad_epochs"])
