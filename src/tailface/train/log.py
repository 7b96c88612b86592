"""Training log: ``train.csv`` (epoch, step, lr, loss, acc, images/s), ``val.csv`` (validation
during training), ``epochs.csv`` (the numbers a head reports at the end of each epoch) and optional
TensorBoard, and the running-mean window that each logged row summarises."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import TextIO

import torch

COLUMNS = ("epoch", "step", "lr", "loss", "acc", "images_per_s")
VAL_COLUMNS = ("epoch", "step", "metric", "value")  # val.csv: one row per validation metric
EPOCH_COLUMNS = VAL_COLUMNS  # epochs.csv: one row per number of a head's epoch report


class RunningMean:
    """Loss and accuracy of the steps since the last logged row, summed on the device (no host
    synchronisation per step), and the images per second over that window."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.acc = torch.zeros((), device=device)
        self.reset()

    def reset(self) -> None:
        self.loss.zero_()
        self.acc.zero_()
        self.steps, self.acc_steps, self.start = 0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor, acc: torch.Tensor | None) -> None:
        self.loss += loss
        self.steps += 1
        if acc is not None:
            self.acc += acc
            self.acc_steps += 1

    def mean_loss(self) -> float:
        return self.loss.item() / self.steps

    def mean_acc(self) -> float | None:
        return self.acc.item() / self.acc_steps if self.acc_steps else None

    def images_per_s(self, batch_size: int) -> float:
        return self.steps * batch_size / (time.perf_counter() - self.start)


class TrainLog:
    def __init__(self, out_dir: Path, resume_step: int = 0, tensorboard: bool = False):
        self.path = Path(out_dir) / "train.csv"
        self.val_path = Path(out_dir) / "val.csv"
        self.epochs_path = Path(out_dir) / "epochs.csv"
        self._keep_rows_up_to(resume_step)
        _keep_rows(self.val_path, VAL_COLUMNS, resume_step)
        _keep_rows(self.epochs_path, EPOCH_COLUMNS, resume_step)
        self._val_file: TextIO | None = None
        new = not self.path.exists()
        self._file = open(self.path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(COLUMNS)
            self._file.flush()
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional extra: tailface[tensorboard]
            except ImportError:
                print("tailface train: tensorboard is not installed; logging to train.csv only "
                      "(pip install tensorboard)", file=sys.stderr)
            else:
                self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def _keep_rows_up_to(self, step: int) -> None:
        """After a resume, drop rows logged past the checkpoint (they will be logged again)."""
        _keep_rows(self.path, COLUMNS, step)

    def write_validation(self, epoch: int, step: int, results: dict[str, float]) -> None:
        """Rows ``epoch, step, metric, value`` in ``val.csv`` (created on first use), and
        TensorBoard scalars ``val/<metric>``."""
        if self._val_file is None:
            new = not self.val_path.exists()
            self._val_file = open(self.val_path, "a", newline="")
            if new:
                csv.writer(self._val_file).writerow(VAL_COLUMNS)
        assert self._val_file is not None
        writer = csv.writer(self._val_file)
        for metric, value in results.items():
            writer.writerow([epoch, step, metric, repr(float(value))])
            if self._tb is not None:
                self._tb.add_scalar(f"val/{metric}", value, step)
        self._val_file.flush()

    def write_epoch_report(self, epoch: int, step: int, results: dict[str, float]) -> None:
        """Rows ``epoch, step, metric, value`` in ``epochs.csv`` (created on first use), and
        TensorBoard scalars ``epoch/<metric>``: a head's end-of-epoch report."""
        new = not self.epochs_path.exists()
        with open(self.epochs_path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(EPOCH_COLUMNS)
            for metric, value in results.items():
                writer.writerow([epoch, step, metric, repr(float(value))])
                if self._tb is not None:
                    self._tb.add_scalar(f"epoch/{metric}", value, step)

    def write(self, epoch: int, step: int, lr: float, loss: float, acc: float | None, images_per_s: float):
        self._csv.writerow([epoch, step, f"{lr:.8g}", repr(float(loss)),
                            "" if acc is None else f"{acc:.6f}", f"{images_per_s:.1f}"])
        self._file.flush()
        if self._tb is not None:
            self._tb.add_scalar("train/loss", loss, step)
            self._tb.add_scalar("train/lr", lr, step)
            self._tb.add_scalar("train/images_per_s", images_per_s, step)
            if acc is not None:
                self._tb.add_scalar("train/acc", acc, step)

    def close(self) -> None:
        self._file.close()
        if self._val_file is not None:
            self._val_file.close()
        if self._tb is not None:
            self._tb.close()


def _keep_rows(path: Path, columns: tuple[str, ...], step: int) -> None:
    """Keep the header and the rows of the CSV at ``path`` logged at steps <= ``step``."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != columns:
        rows = [list(columns)]
    kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(columns) and int(r[1]) <= step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def read_log(path: str | Path) -> list[dict]:
    """Rows of a ``train.csv`` as dicts of floats (acc None when the head gives no logits)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({"epoch": int(r["epoch"]), "step": int(r["step"]), "lr": float(r["lr"]),
                    "loss": float(r["loss"]), "acc": float(r["acc"]) if r["acc"] else None,
                    "images_per_s": float(r["images_per_s"])})
    return out
