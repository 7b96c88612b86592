"""VPL (Deng et al., CVPR 2021, "Variational Prototype Learning for Deep Face Recognition").

A class is represented by its classifier row mixed with a *memory* of the latest feature seen
for it, when that feature is recent. Per class ``c`` the head keeps the memory ``v_c`` (the
L2-normalised, detached feature of the last training sample of class ``c``) and the iteration
``t_c`` it was written at (``0``: never). At training iteration ``t`` (1 for the first training
forward pass):

    live_c = (t > start_iter) and (t_c > 0) and (t - t_c <= delta)
    p_c    = normalise((1 - lam) w_c / ||w_c|| + lam v_c)   if live_c,   w_c / ||w_c||  otherwise
    cos_ic = f_i . p_c / ||f_i||
    z_ic   = s cos_ic  (c != y_i),   z_iy = s cos(theta_iy + m)  (ArcFace),   loss = mean_i -log softmax(z_i)_y

then, after the logits, for every sample of the (global) batch: ``v_{y_i} = f_i / ||f_i||`` and
``t_{y_i} = t`` (a class with several samples in the batch keeps the last one in batch order).
The gradient reaches the rows through ``p_c`` (the memory is a constant) and the features through
``cos``; ``HeadOutput.logits`` are ``s cos_ic`` against the mixed prototypes, without margin.

Defaults (the authors' ``recognition/vpl`` configuration in insightface): ``start_iter = 8000``,
``delta = 200``, ``lam = 0.15``, ArcFace ``s = 64``, ``m = 0.5`` (through the margin heads'
``loss_logits``, :mod:`tailface.heads.margin_head`). Decisions: a never-written entry is never live
(the authors start the memory with random unit rows at iteration 0, which ``start_iter > delta``
keeps stale); a live row is mixed from the *normalised* row; the mix is one dense pass over the
rows (``lam`` on the live ones, ``0`` on the others, then :func:`~tailface.heads.normalize.normalize_rows`),
so a stale row is ``unit(w_c)`` normalised again (equal to rounding), and without any live row
(before ``start_iter``) the prototypes are ``unit(w_c)`` itself: the ArcFace head bit for bit;
the memory feature is the sample's own (the authors' optional momentum-encoder feature is not
implemented); several samples of one class in a batch: the last one in batch order (the authors'
scatter leaves it to the device).

State (persistent buffers, so checkpoints and a resumed run continue it exactly): ``iteration``
(training forward passes so far; eval mode reads it and writes nothing), ``memory`` (``C x d``),
``memory_step`` (``C``), and the epoch's liveness counts for :meth:`epoch_report`: ``live_steps``
(per class, the training steps of the epoch at which it was live), ``counted_steps`` and
``counted_epoch``. ``row_buffers`` names the per-class ones: a sharded head holds its rows' entries
and ``train/sharded.py: head_state`` gathers them in class order (any world size).

Per epoch (the trainer's ``epoch_report`` hook, ``epochs.csv``): the share of tail classes (groups C
and D of the training set's :class:`~tailface.data.label_space.ClassStats`) whose memory entry was
live, averaged over the epoch's steps (``vpl/live_tail_mean``) and at least once
(``vpl/live_tail_any``), and the same average over the head classes (``vpl/live_head_mean``).

Replicated (:class:`VPLHead`; under DDP it all-gathers the detached features and labels to write
the memory, so every replica holds the same memory) and class-sharded (:class:`ShardedVPLHead`:
rank ``r`` holds the memory of its rows and writes the samples of the global batch whose class it
owns; with Partial FC sampling the kept rows are mixed as above).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from tailface.data.label_space import ClassStats
from tailface.heads.base import register_head
from tailface.heads.margin_head import MarginHead, MarginHooks
from tailface.heads.normalize import normalize_rows
from tailface.heads.sharded import ShardedMarginHead, gather_batch, group_rank_and_size

START_ITER, DELTA, LAMBDA = 8000, 200, 0.15  # the authors' recognition/vpl configuration
S, M = 64.0, 0.5  # ArcFace's


def _check(start_iter: int, delta: int, lam: float) -> tuple[int, int, float]:
    for name, value in (("start_iter", start_iter), ("delta", delta)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0 (iterations), got {value!r}")
    lam = float(lam)
    if not (math.isfinite(lam) and 0.0 <= lam <= 1.0):
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    return start_iter, delta, lam


def last_of_each(rows: torch.Tensor) -> torch.Tensor:
    """Positions in ``rows`` of the last occurrence of each distinct value (ascending values)."""
    flipped = rows.flip(0).cpu().numpy()
    _, first = np.unique(flipped, return_index=True)
    return torch.from_numpy(len(flipped) - 1 - first).to(rows.device)


class VariationalPrototypes(MarginHooks):
    """The memory, its liveness and the mixing (module docstring), shared by both heads. A head
    calls :meth:`_init_vpl` with its rows' global classes, mixes in its cosines and writes the
    memory in ``loss_logits`` (after the cosines, with the global batch)."""

    row_buffers = ("memory", "memory_step", "live_steps")  # one entry per (local) classifier row
    iteration: torch.Tensor
    memory: torch.Tensor
    memory_step: torch.Tensor
    live_steps: torch.Tensor
    counted_steps: torch.Tensor
    counted_epoch: torch.Tensor
    row_is_tail: torch.Tensor

    def _init_vpl(self, rows: np.ndarray, embedding_size: int, class_stats: ClassStats, start_iter: int,
                  delta: int, lam: float) -> None:
        self.start_iter, self.delta, self.lam = _check(start_iter, delta, lam)
        n = len(rows)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self.register_buffer("memory", torch.zeros(n, embedding_size))
        self.register_buffer("memory_step", torch.zeros(n, dtype=torch.int64))
        self.register_buffer("live_steps", torch.zeros(n, dtype=torch.int64))
        self.register_buffer("counted_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("counted_epoch", torch.full((), -1, dtype=torch.int64))
        self.register_buffer("row_is_tail", torch.from_numpy(class_stats.tail[rows].copy()), persistent=False)

    def vpl_repr(self) -> str:
        return f"start_iter={self.start_iter}, delta={self.delta}, lam={self.lam}, s={self.s}, m={self.m}"

    def live(self) -> torch.Tensor:
        """Bool per (local) row: its memory entry is live at the next training iteration."""
        t = self.iteration + 1
        if int(t) <= self.start_iter:
            return torch.zeros_like(self.memory_step, dtype=torch.bool)
        return (self.memory_step > 0) & (t - self.memory_step <= self.delta)

    def prototypes(self, w_unit: torch.Tensor, rows: np.ndarray | None) -> torch.Tensor:
        """The unit prototypes ``p_c`` of the unit rows ``w_unit`` (local rows ``rows``; None: all)."""
        live = self.live()
        if rows is not None:
            live = live[torch.from_numpy(rows).to(live.device)]
        if not bool(live.any()):
            return w_unit
        memory = self.memory if rows is None else self.memory.index_select(0, torch.from_numpy(rows).to(live.device))
        lam = (live.to(w_unit.dtype) * self.lam)[:, None]  # lam on the live rows, 0 on the others
        return normalize_rows(torch.addcmul(w_unit * (1.0 - lam), memory.to(w_unit), lam))

    def owned_rows(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(samples, local rows)``: the samples of the global batch whose class this head holds."""
        return torch.arange(len(labels), device=labels.device), labels

    def gathered(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The global batch (the sharded head's ``loss_logits`` sees it already)."""
        return features, labels

    @torch.no_grad()
    def remember(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """One training iteration: count the live rows, write the batch into the memory, advance."""
        t = self.iteration + 1
        self.live_steps += self.live().to(self.live_steps.dtype)
        self.counted_steps += 1
        features, labels = self.gathered(features.detach(), labels)
        samples, rows = self.owned_rows(labels)
        if len(rows):
            last = last_of_each(rows)
            samples, rows = samples[last], rows[last]
            self.memory[rows] = F.normalize(features[samples].to(self.memory.dtype), dim=1)
            self.memory_step[rows] = t
        self.iteration.copy_(t)

    def loss_logits(self, base: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                    features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        logits = super().loss_logits(base, targets, labels, features, classes)  # ArcFace's margin
        if self.training:
            self.remember(features, labels)
        return logits

    # the epoch's liveness -------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """The trainer's epoch hook: a new epoch starts its liveness counts (a resumed one keeps them)."""
        if int(self.counted_epoch) != int(epoch):
            self.live_steps.zero_()
            self.counted_steps.zero_()
            self.counted_epoch.fill_(int(epoch))

    def liveness_counts(self) -> torch.Tensor:
        """``[sum of live steps over tail rows, tail rows live at least once, tail rows, same three
        over head rows]`` (float64; a sharded head sums them over its ranks)."""
        tail, live = self.row_is_tail, self.live_steps
        return torch.stack([live[tail].sum(), (live[tail] > 0).sum(), tail.sum(),
                            live[~tail].sum(), (live[~tail] > 0).sum(), (~tail).sum()]).double()

    def epoch_report(self) -> dict[str, float]:
        """The epoch's liveness shares (module docstring); every rank must call it."""
        c = self.liveness_counts().tolist()
        steps = max(int(self.counted_steps), 1)

        def share(x: float, n: float) -> float:
            return x / n if n else math.nan

        return {"vpl/live_tail_mean": share(c[0], c[2] * steps), "vpl/live_tail_any": share(c[1], c[2]),
                "vpl/live_head_mean": share(c[3], c[5] * steps)}


class VPLHead(VariationalPrototypes, MarginHead):
    def __init__(self, embedding_size: int, num_classes: int, class_stats: ClassStats, start_iter: int = START_ITER,
                 delta: int = DELTA, lam: float = LAMBDA, s: float = S, m: float = M):
        super().__init__(embedding_size, num_classes, "arcface", s, m)
        self._init_vpl(np.arange(num_classes), embedding_size, class_stats, start_iter, delta, lam)

    def extra_repr(self) -> str:
        return self.vpl_repr()

    def cosines(self, features: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            w = self.prototypes(F.normalize(self.weight.to(dtype), dim=1), None)
            return F.linear(F.normalize(features.to(dtype), dim=1), w)

    def gathered(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Under DDP, every rank's batch (in rank order), so that the replicas' memories agree."""
        if dist.is_available() and dist.is_initialized() and group_rank_and_size()[1] > 1:
            gathered_features, gathered_labels, _ = gather_batch(features, labels)
            return gathered_features, gathered_labels
        return features, labels


class ShardedVPLHead(VariationalPrototypes, ShardedMarginHead):
    def __init__(self, embedding_size: int, num_classes: int, class_stats: ClassStats, start_iter: int = START_ITER,
                 delta: int = DELTA, lam: float = LAMBDA, s: float = S, m: float = M, sample_rate: float = 1.0,
                 seed: int = 0, group=None, init_std: float = 0.01):
        super().__init__(embedding_size, num_classes, kind="arcface", s=s, m=m, sample_rate=sample_rate, seed=seed,
                         group=group, init_std=init_std)
        self._init_vpl(self.plan.classes(self.rank), embedding_size, class_stats, start_iter, delta, lam)

    def extra_repr(self) -> str:
        return f"{self.vpl_repr()}, rank={self.rank}/{self.world_size}, sample_rate={self.sample_rate}"

    def normalized_cosines(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # ``w``: the kept local rows, ``self.last_kept`` (None: all of them), set by forward first
        return F.linear(F.normalize(f, dim=1), self.prototypes(normalize_rows(w), self.last_kept))

    def owned_rows(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        owner, row = self.plan.locate(labels.cpu().numpy())
        samples = np.flatnonzero(owner == self.rank)
        return (torch.from_numpy(samples).to(labels.device), torch.from_numpy(row[samples]).to(labels.device))

    def liveness_counts(self) -> torch.Tensor:
        counts = super().liveness_counts()
        if self.world_size > 1:
            dist.all_reduce(counts, group=self.group)
        return counts


register_head("vpl", sharded=ShardedVPLHead, needs_class_stats=True)(VPLHead)
