"""Training log: ``train.csv`` (epoch, step, lr, loss, acc, images/s) and optional TensorBoard."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

COLUMNS = ("epoch", "step", "lr", "loss", "acc", "images_per_s")


class TrainLog:
    def __init__(self, out_dir: Path, resume_step: int = 0, tensorboard: bool = False):
        self.path = Path(out_dir) / "train.csv"
        self._keep_rows_up_to(resume_step)
        new = not self.path.exists()
        self._file = open(self.path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(COLUMNS)
            self._file.flush()
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("tailface train: tensorboard is not installed; logging to train.csv only "
                      "(pip install tensorboard)", file=sys.stderr)
            else:
                self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def _keep_rows_up_to(self, step: int) -> None:
        """After a resume, drop rows logged past the checkpoint (they will be logged again)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or tuple(rows[0]) != COLUMNS:
            rows = [list(COLUMNS)]
        kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(COLUMNS) and int(r[1]) <= step]
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerows(kept)

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
        if self._tb is not None:
            self._tb.close()


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
