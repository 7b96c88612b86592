"""``TrainState``: where a training run is (epoch, step) and the epoch's loss so far.

It is what a ``last.pt`` needs beyond the modules, optimizer and schedule to continue a run step
for step. ``state_dict()`` keeps the checkpoint keys of earlier tailface versions (``epoch``,
``step_in_epoch``, ``global_step``, ``epoch_loss``), so their ``last.pt`` files still resume.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainState:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    epoch_loss_sum: float = 0.0  # sum of the step losses of the current epoch folded in so far
    epoch_loss_steps: int = 0

    def add_epoch_loss(self, loss_sum: float, steps: int) -> None:
        self.epoch_loss_sum += loss_sum
        self.epoch_loss_steps += steps

    def epoch_mean_loss(self) -> float:
        return self.epoch_loss_sum / max(1, self.epoch_loss_steps)

    def next_epoch(self) -> None:
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.epoch_loss_sum, self.epoch_loss_steps = 0.0, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "epoch_loss": [self.epoch_loss_sum, self.epoch_loss_steps]}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.epoch_loss_sum, self.epoch_loss_steps = float(state["epoch_loss"][0]), int(state["epoch_loss"][1])
