"""Class-sharded classification heads: the classifier rows split across the ranks of a process group.

Rank ``r`` holds the rows of its classes (a :class:`~tailface.heads.shard_plan.ShardPlan`) as an
ordinary ``nn.Parameter`` (``local_rows x d``). A forward pass on local features and labels:

1. all-gathers the features (autograd: the gradient of the gathered batch is summed over the
   ranks and each rank keeps its own samples' part) and the labels of every rank (batch sizes may
   differ between ranks);
2. computes the logits of the whole global batch against the local rows (optionally only a sample
   of them, below);
3. normalises the softmax across the ranks with three all-reduces of one value per sample: MAX of
   the row maxima, SUM of the exp-sums, SUM of the target logit (each sample's target lives on
   exactly one rank, the others add 0).

The loss is the mean over the global batch (or the weighted mean ``sum_i w_i l_i / sum_i w_i``
of a ``sample_weight`` hook), identical on every rank, and equal to the loss of the
single-process head on the global batch; so are the gradients of the rows (each rank gets those
of its own rows) and of the features (each rank gets those of its own samples). Only all-gather,
all-reduce and broadcast are used (gloo on CPU, NCCL on GPU). Without an initialised process
group the head is the world-size-1 case of the same code.

Kinds: ``softmax`` (plain ``f . w`` logits, no bias, no normalisation: ``heads/softmax.py``) or
any margin kind registered in ``heads/margins.py`` (``none``, ``cosface``, ``arcface``, ...:
normalised, ``s * cos`` with that margin; the rows are normalised by ``normalize_rows``, same
values as ``F.normalize`` with a lighter backward). ``ShardedMarginHead`` has the hooks of
:class:`~tailface.heads.margin_head.MarginHooks` (per-class margin, per-class logit offset,
per-sample loss weight), called with global class ids: the offsets of this rank's (kept) columns,
the margins and weights of the whole global batch (the same on every rank). Subclasses may
override ``normalized_cosines(f, w)`` (sub-center ArcFace: ``rows x K x d`` rows) and
``loss_logits`` (AdaFace), which see the all-gathered global batch ``f``.
The dispersion head is in :mod:`tailface.method.sharded_dispersion`. Computation runs in at least
float32, also under autocast (as ``MarginHead``; the unsharded softmax head follows autocast).
Every rank must call ``backward`` on the loss (the gather's backward is an all-reduce); to keep
these collectives apart from DDP's, the head may be given its own ``group``.

Negative sampling (Partial FC, An et al. 2021), ``sample_rate`` in ``(0, 1]``, in training mode
only: rank ``r`` keeps ``max(ceil(sample_rate * rows_r), P_r)`` of its rows, where ``P_r`` is
the number of its classes with a sample in the global batch; these positives are always kept, the
rest is a uniform random choice of the other rows. The choice is a function of ``(seed, step,
rank)`` (``step``: the ``step`` argument, else a counter the head advances at each sampled
forward pass) and is exposed as ``head.last_kept`` (local rows) and ``head.last_kept_classes``
(global classes). Rows not kept get a zero gradient. ``sample_rate=1`` (and eval mode) is the
unsampled head. The softmax then runs over the kept classes only.

Checkpoints: :func:`gather_full_weight` / :func:`load_full_weight` (and :func:`gather_full_rows`
/ :func:`shard_full_rows` for any ``local_rows x ...`` tensor, e.g. SGD momentum) convert between
the local rows and a classifier in global class order, so a checkpoint does not depend on the
world size.

Initial rows do not depend on the world size either: row ``c`` is drawn from ``N(0, init_std^2)``
by a generator seeded with ``(seed, c // 4096)``. (They differ from the unsharded heads', which
draw all rows from the global torch RNG.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from tailface.heads.base import HeadOutput
from tailface.heads.labels import checked_labels
from tailface.heads.margin_head import PLAIN, MarginHooks, check_kind
from tailface.heads.normalize import normalize_rows
from tailface.heads.shard_plan import ShardPlan

_INIT_BLOCK = 4096


# process group ---------------------------------------------------------------------------------
def group_rank_and_size(group=None) -> tuple[int, int]:
    """``(rank, world_size)`` in ``group``; ``(0, 1)`` without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def _global_rank(group, rank: int) -> int:
    return rank if group is None else dist.get_global_rank(group, rank)


def _gather_padded(x: torch.Tensor, sizes: list[int], group) -> torch.Tensor:
    """Concatenation over the ranks of their ``x`` (``sizes[r]`` rows on rank ``r``)."""
    width = max(sizes)
    pad = x.new_zeros((width,) + tuple(x.shape[1:]))
    pad[: x.shape[0]] = x
    bufs = [torch.empty_like(pad) for _ in sizes]
    dist.all_gather(bufs, pad, group=group)
    return torch.cat([b[:n] for b, n in zip(bufs, sizes)])


class _GatherBatch(torch.autograd.Function):
    """All-gather with a backward that sums the gathered gradient over the ranks (all-reduce) and
    returns this rank's slice."""

    @staticmethod
    def forward(ctx, x, sizes, rank, group):
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        return _gather_padded(x, sizes, group)

    @staticmethod
    def backward(ctx, grad):
        sizes, width = ctx.sizes, max(ctx.sizes)
        pad = grad.new_zeros((len(sizes), width) + tuple(grad.shape[1:]))
        start = 0
        for r, n in enumerate(sizes):
            pad[r, :n] = grad[start:start + n]
            start += n
        dist.all_reduce(pad, group=ctx.group)
        return pad[ctx.rank, : sizes[ctx.rank]].clone(), None, None, None


def gather_batch(features: torch.Tensor, labels: torch.Tensor, group=None):
    """``(features, labels, sizes)`` of the global batch (rank order); the features keep their
    gradient path back to the rank that owns them."""
    rank, world = group_rank_and_size(group)
    if world == 1:
        return features, labels, [features.shape[0]]
    n = torch.tensor([features.shape[0]], device=features.device, dtype=torch.int64)
    counts = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(counts, n, group=group)
    sizes = [int(c.item()) for c in counts]
    return _GatherBatch.apply(features, sizes, rank, group), _gather_padded(labels, sizes, group), sizes


# the distributed softmax cross-entropy ----------------------------------------------------------
class _ShardedSoftmaxLoss(torch.autograd.Function):
    """``mean_i [log sum_j exp(z_ij) - t_i]`` with the columns ``j`` spread over the ranks:
    ``logits`` (``B x C_local``), ``target`` (``B``: the target logit where ``owned``); with
    ``weight`` (``B``, the same on every rank) the weighted mean ``sum_i w_i l_i / sum_i w_i``."""

    @staticmethod
    def forward(ctx, logits, target, owned, world, group, weight=None):
        b = logits.shape[0]
        if logits.shape[1]:
            row_max = logits.detach().max(1).values.clone()
        else:
            row_max = logits.new_full((b,), float("-inf"))
        if world > 1:
            dist.all_reduce(row_max, op=dist.ReduceOp.MAX, group=group)
        e = torch.exp(logits.detach() - row_max[:, None])
        sum_exp = e.sum(1)
        tgt = torch.where(owned, target.detach(), torch.zeros_like(target))
        if world > 1:
            dist.all_reduce(sum_exp, group=group)
            dist.all_reduce(tgt, group=group)
        if weight is None:
            ctx.save_for_backward(e.div_(sum_exp[:, None]), owned, None)
            return (sum_exp.log() + row_max - tgt).sum() / max(b, 1)
        weight = weight.detach().to(e)
        ctx.save_for_backward(e.div_(sum_exp[:, None]), owned, weight / weight.sum())
        return (weight * (sum_exp.log() + row_max - tgt)).sum() / weight.sum()

    @staticmethod
    def backward(ctx, grad):
        prob, owned, coef = ctx.saved_tensors
        if coef is None:
            scale = grad / max(prob.shape[0], 1)
            return prob * scale, -owned.to(prob.dtype) * scale, None, None, None, None
        scale = grad * coef
        return prob * scale[:, None], -owned.to(prob.dtype) * scale, None, None, None, None


def sharded_softmax_loss(logits: torch.Tensor, target: torch.Tensor, owned: torch.Tensor, group=None,
                         weight: torch.Tensor | None = None) -> torch.Tensor:
    """The global-batch mean cross-entropy of logits whose columns are split across the ranks
    (weighted by ``weight``, one per sample of the global batch, when given)."""
    return _ShardedSoftmaxLoss.apply(logits, target, owned, group_rank_and_size(group)[1], group, weight)


# sampling and initialisation --------------------------------------------------------------------
def kept_count(sample_rate: float, units: int, positives: int) -> int:
    """Partial FC's count: ``max(ceil(sample_rate * units), positives)``, at most ``units``."""
    return min(units, max(math.ceil(round(sample_rate * units, 9)), positives))


def sample_units(units: int, positives: np.ndarray, sample_rate: float, seed: int, step: int, rank: int) -> np.ndarray:
    """Sorted kept units: all ``positives`` plus a uniform random choice of the others, drawn from
    ``numpy.random.default_rng([seed, step, rank])``."""
    keep = kept_count(sample_rate, units, len(positives))
    priority = np.random.default_rng([int(seed), int(step), int(rank)]).random(units)
    priority[positives] = 2.0
    if keep >= units:
        return np.arange(units, dtype=np.int64)
    return np.sort(np.argpartition(-priority, keep - 1)[:keep]).astype(np.int64)


def _check_sample_rate(sample_rate: float) -> float:
    sample_rate = float(sample_rate)
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample_rate must lie in (0, 1], got {sample_rate}")
    return sample_rate


def init_rows(classes: np.ndarray, embedding_size: int, seed: int = 0, std: float = 0.01) -> torch.Tensor:
    """Initial rows of global ``classes``, independent of how the classes are sharded."""
    out = torch.empty(len(classes), embedding_size)
    blocks = classes // _INIT_BLOCK
    for b in np.unique(blocks):
        state = int(np.random.SeedSequence([int(seed), int(b)]).generate_state(1, dtype=np.uint64)[0] >> 1)
        gen = torch.Generator().manual_seed(state)
        block = torch.randn(_INIT_BLOCK, embedding_size, generator=gen) * std
        where = np.flatnonzero(blocks == b)
        out[torch.from_numpy(where)] = block[torch.from_numpy(classes[where] - b * _INIT_BLOCK)]
    return out


class _ShardedBase(nn.Module):
    """Shared state: plan, rank, the local rows, the sampling step and what was kept."""

    def _setup(self, plan: ShardPlan, rank: int, embedding_size: int, sample_rate: float, seed: int,
               group, init_std: float):
        self.plan, self.rank, self.world_size, self.group = plan, rank, plan.world_size, group
        self.sample_rate, self.seed, self.step = _check_sample_rate(sample_rate), int(seed), 0
        self.weight = nn.Parameter(init_rows(plan.classes(rank), embedding_size, seed, init_std))
        self.last_kept: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return self.plan.num_classes

    @property
    def last_kept_classes(self) -> np.ndarray:
        """Global classes of the rows used by the last forward pass (all local rows unsampled)."""
        rows = np.arange(self.plan.rows(self.rank)) if self.last_kept is None else self.last_kept
        return self.plan.classes(self.rank)[rows]

    def _sampling_step(self, step: int | None) -> int | None:
        """The step to sample with, or None for the unsampled softmax; advances the counter."""
        if self.sample_rate >= 1.0 or not self.training:
            return None
        if step is None:
            step = self.step
        self.step = int(step) + 1
        return int(step)

    def _check_group(self):
        rank, world = group_rank_and_size(self.group)
        if (rank, world) != (self.rank, self.world_size):
            raise RuntimeError(f"head built for rank {self.rank} of {self.world_size}, now rank {rank} of {world}")


class ShardedMarginHead(MarginHooks, _ShardedBase):
    """Class-sharded ``softmax`` head or margin head of any registered margin kind, with the hooks
    of :class:`~tailface.heads.margin_head.MarginHooks` (see the module docstring).

    ``forward(local_features, local_labels, step=None) -> HeadOutput(loss, None, global_labels)``.
    """

    local_classes: torch.Tensor

    def __init__(self, embedding_size: int, num_classes: int, kind: str = "arcface", s: float = 64.0,
                 m: float = 0.5, easy_margin: bool = False, sample_rate: float = 1.0, seed: int = 0,
                 group=None, init_std: float = 0.01):
        super().__init__()
        check_kind(kind)
        if s <= 0:
            raise ValueError(f"scale s must be positive, got {s}")
        self.kind, self.s, self.m, self.easy_margin = kind, float(s), float(m), bool(easy_margin)
        rank, world = group_rank_and_size(group)
        self._setup(ShardPlan.contiguous(num_classes, world), rank, embedding_size, sample_rate, seed, group, init_std)
        # global class of each local row, for the logit_offset hook (not saved: follows from the plan)
        self.register_buffer("local_classes", torch.from_numpy(self.plan.classes(rank)).long(), persistent=False)

    def extra_repr(self) -> str:
        return (f"kind={self.kind}, s={self.s}, m={self.m}, classes={self.num_classes}, rank={self.rank}/"
                f"{self.world_size}, rows={self.weight.shape[0]}, sample_rate={self.sample_rate}")

    def normalized_cosines(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``B x K`` cosines of the (global) batch ``f`` against the (kept) local rows ``w``."""
        return F.linear(F.normalize(f, dim=1), normalize_rows(w))

    def forward(self, features: torch.Tensor, labels: torch.Tensor, step: int | None = None) -> HeadOutput:
        self._check_group()
        labels = checked_labels(labels, self.num_classes, features.shape[0])
        dtype = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            f, y, _ = gather_batch(features.to(dtype), labels, self.group)
            w = self.weight.to(dtype)
            y_np = y.cpu().numpy()
            owner, row = self.plan.locate(y_np)
            owned = owner == self.rank
            col = np.where(owned, row, -1)
            step = self._sampling_step(step)
            self.last_kept = None
            classes = self.local_classes  # global class of each logit column
            if step is not None:
                kept = sample_units(self.plan.rows(self.rank), np.unique(col[owned]), self.sample_rate, self.seed,
                                    step, self.rank)
                self.last_kept = kept
                col[owned] = np.searchsorted(kept, col[owned])
                w = w.index_select(0, torch.from_numpy(kept).to(w.device))
                classes = classes[torch.from_numpy(kept).to(classes.device)]
            cols = torch.from_numpy(col).to(f.device)
            base = F.linear(f, w) if self.kind == PLAIN else self.normalized_cosines(f, w)
            logits = self.loss_logits(base, cols, y, f, classes)
            is_owned = cols >= 0
            if logits.shape[1]:
                target = logits.gather(1, cols.clamp_min(0)[:, None]).squeeze(1)
            else:
                target = logits.new_zeros(logits.shape[0])
            loss = sharded_softmax_loss(logits, target, is_owned, self.group, self.sample_weight(y))
        return HeadOutput(loss, None, y)


# world-size-independent checkpoints ---------------------------------------------------------------
def gather_full_rows(head: _ShardedBase, local: torch.Tensor, dst: int | None = None) -> torch.Tensor | None:
    """The ``C x ...`` tensor in global class order assembled from every rank's ``local`` rows
    (``head.weight``, its gradient, an optimizer buffer of it). On every rank (``dst=None``) or
    on rank ``dst`` only (``None`` elsewhere); one broadcast per rank, so a rank holds at most one
    other shard at a time besides the result."""
    plan, rank, group = head.plan, head.rank, head.group
    local = local.detach()
    if local.shape[0] != plan.rows(rank):
        raise ValueError(f"expected {plan.rows(rank)} local rows, got {local.shape[0]}")
    keep = dst is None or rank == dst
    storage = local.new_empty((plan.num_classes,) + tuple(local.shape[1:]))  # (filled on the keeping ranks)
    for r in range(plan.world_size):
        if plan.rows(r) == 0:
            continue
        if r == rank:
            buf = local.contiguous()
        else:
            buf = local.new_empty((plan.rows(r),) + tuple(local.shape[1:]))
        if plan.world_size > 1:
            dist.broadcast(buf, src=_global_rank(group, r), group=group)
        if keep:
            storage[plan.bounds[r]:plan.bounds[r + 1]] = buf
    if not keep:
        return None
    if plan.order is None:
        return storage
    full = torch.empty_like(storage)
    full[torch.from_numpy(plan.order).to(full.device)] = storage
    return full


def shard_full_rows(head: _ShardedBase, full: torch.Tensor) -> torch.Tensor:
    """This rank's rows (local order) of a ``C x ...`` tensor in global class order."""
    if full.shape[0] != head.num_classes:
        raise ValueError(f"expected {head.num_classes} rows in global class order, got {full.shape[0]}")
    return full[torch.from_numpy(head.plan.classes(head.rank)).to(full.device)]


def gather_full_weight(head: _ShardedBase, dst: int | None = None) -> torch.Tensor | None:
    """The whole classifier, ``C x d`` in global class order (see :func:`gather_full_rows`)."""
    return gather_full_rows(head, head.weight, dst)


def load_full_weight(head: _ShardedBase, full_weight: torch.Tensor) -> None:
    """Copy this rank's rows out of a ``C x d`` classifier in global class order (written by any
    number of ranks)."""
    with torch.no_grad():
        head.weight.copy_(shard_full_rows(head, full_weight).to(head.weight.device, head.weight.dtype))
