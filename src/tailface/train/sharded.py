"""The class-sharded heads (:mod:`tailface.heads.sharded`) in the trainer: building them from a
``head:`` block, world-size-independent checkpoint state, and the gradient bookkeeping.

A sharded head holds only this rank's classifier rows; the trainer wraps only the backbone in
DDP and every rank calls the head on its local slice of the batch. The head's loss is the mean
over the *global* batch, so each rank's backbone gradient is already its exact share of the
global gradient: the shares must be *summed*; DDP averages them, so the trainer multiplies the
backbone gradients by the world size (:func:`sum_replica_grads`). The rows get exact gradients
on the rank that holds them; SGD's weight decay and momentum apply to the local rows as to any
parameter. Checkpoints hold the full classifier (and its SGD
momentum) in global class order (:func:`head_state`, :func:`optimizer_state`), gathered on rank
0, and are cut again for whatever world size resumes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.distributed as dist
import torch.nn as nn

from tailface.data.label_space import ClassStats
from tailface.heads.base import create_sharded_head
from tailface.heads.sharded import (
    _ShardedBase,
    gather_full_rows,
    load_full_weight,
    shard_full_rows,
)
from tailface.train.checkpoint import SPEC_ATTR, head_spec

ShardedHead = _ShardedBase  # the base class of the sharded heads (ShardedMarginHead, ShardedDispersionHead)


def is_sharded(head: nn.Module) -> bool:
    return isinstance(head, _ShardedBase)


def build_sharded_head(name: str, embedding_size: int, num_classes: int, sample_rate: float = 1.0, seed: int = 0,
                       class_stats: ClassStats | None = None, **kwargs) -> nn.Module:
    """The sharded version of head ``name`` (the registry's sharded builder,
    :func:`~tailface.heads.base.create_sharded_head`; ValueError for a head without one). It
    records the spec of the *unsharded* head (``build_head``'s, with the class statistics of a head
    that needs them), so ``load_head`` rebuilds a checkpoint's classifier, which is kept whole and in
    class order, as an ordinary head."""
    head = create_sharded_head(name, embedding_size, num_classes, sample_rate=sample_rate, seed=seed,
                               class_stats=class_stats, **kwargs)
    setattr(head, SPEC_ATTR, head_spec(name, embedding_size, num_classes, kwargs, class_stats))
    return head


# checkpoints ----------------------------------------------------------------------------------
def row_buffers(head: _ShardedBase) -> tuple[str, ...]:
    """The names of the head's buffers that hold one entry per local row (``head.row_buffers``;
    VPL's memory), which checkpoints keep whole and in class order like the rows."""
    return tuple(getattr(head, "row_buffers", ()))


def head_state(head: _ShardedBase, dst: int = 0) -> dict | None:
    """``{"weight": C x ...}`` in global class order on rank ``dst`` (None elsewhere), with the
    head's other ``state_dict`` entries: its :func:`row_buffers` gathered in class order like the
    rows, and the persistent buffers a sharded head keeps identical on every rank (AdaFace's running
    norm statistics, VPL's iteration) as they are, so the keys are those of the unsharded head.
    Every rank must call it."""
    full = gather_full_rows(head, head.weight, dst)
    rows = {name: gather_full_rows(head, getattr(head, name), dst) for name in row_buffers(head)}
    if full is None:
        return None
    replicated = {k: v.detach().cpu().clone() for k, v in head.state_dict().items()  # (copies, not the live buffers)
                  if k != "weight" and k not in rows}
    return {"weight": full.cpu(), **{k: v.cpu() for k, v in rows.items() if v is not None}, **replicated}


def sharding_state(head: _ShardedBase) -> dict:
    """What a sharded head needs beyond its rows to continue: the sampling counter."""
    return {"step": int(head.step), "seed": int(head.seed), "sample_rate": float(head.sample_rate),
            "world_size": int(head.world_size)}


def load_head_state(head: _ShardedBase, state: dict, sharding: dict | None) -> None:
    load_full_weight(head, state["weight"])
    rows = {name: shard_full_rows(head, state[name]) for name in row_buffers(head) if name in state}
    replicated = {k: v for k, v in state.items() if k != "weight" and k not in rows}
    head.load_state_dict({**replicated, **rows, "weight": head.weight.detach()})  # (strict: the buffers' keys)
    if sharding is not None:
        head.step = int(sharding["step"])


def _index_of(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> int:
    """The index ``optimizer.state_dict()`` gives ``param``."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return next(i for i, p in enumerate(params) if p is param)


def optimizer_state(optimizer: torch.optim.Optimizer, head: _ShardedBase, dst: int = 0) -> dict | None:
    """``optimizer.state_dict()`` with the head rows' state (SGD momentum) whole and in class
    order, on rank ``dst`` (None elsewhere); every rank must call it."""
    sd = optimizer.state_dict()
    index = _index_of(optimizer, head.weight)
    state = sd["state"].get(index)
    full = {}
    for key in sorted(state or {}):  # the same keys on every rank
        value = state[key]
        if torch.is_tensor(value) and value.dim() and value.shape[0] == head.weight.shape[0]:
            gathered = gather_full_rows(head, value, dst)
            full[key] = None if gathered is None else gathered.cpu()
        else:
            full[key] = value
    if dst is not None and head.rank != dst:
        return None
    if state is not None:
        sd["state"] = {**sd["state"], index: full}  # a new dict: the optimizer's own state stays local
    return sd


def load_optimizer_state(optimizer: torch.optim.Optimizer, head: _ShardedBase, sd: dict) -> None:
    """Load a state written by :func:`optimizer_state` (any world size): this rank's rows of the
    head's state."""
    index = _index_of(optimizer, head.weight)
    state = sd["state"].get(index)
    if state is not None:
        local = {key: shard_full_rows(head, value) if torch.is_tensor(value) and value.dim()
                 and value.shape[0] == head.num_classes else value for key, value in state.items()}
        sd = {**sd, "state": {**sd["state"], index: local}}
    optimizer.load_state_dict(sd)


# gradients ------------------------------------------------------------------------------------
def sum_replica_grads(params: Iterable[torch.Tensor], world_size: int) -> None:
    """Turn DDP's mean of the ranks' backbone gradients into their sum (multiply by the world
    size): with a sharded head each rank's gradient is its share of the gradient of the
    global-batch loss. (A DDP communication hook that sums would save the multiplication; a
    Python hook's future callbacks made gloo processes abort at exit now and then, 1 in 5 runs of
    3 ranks on CPU, so the trainer multiplies.)"""
    for p in params:
        if p.grad is not None:
            p.grad.mul_(world_size)


def clip_grad_norm_(backbone: list[torch.Tensor], head: _ShardedBase, max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` over the backbone (replicated) and the rows of every rank: the
    norm of the whole gradient, the same on every rank."""
    grads = [p.grad for p in backbone if p.grad is not None]
    device = head.weight.device
    backbone_sq = sum((g.detach().double().pow(2).sum() for g in grads), torch.zeros((), dtype=torch.float64,
                                                                                   device=device))
    rows_sq = torch.zeros((), dtype=torch.float64, device=device)
    if head.weight.grad is not None:
        rows_sq = head.weight.grad.detach().double().pow(2).sum()
    if head.world_size > 1:
        dist.all_reduce(rows_sq, group=head.group)
    total = (backbone_sq + rows_sq).sqrt()
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads + ([head.weight.grad] if head.weight.grad is not None else []):
        g.detach().mul_(coef.to(g.dtype))
    return total.float()


def share_nonfinite(head: _ShardedBase) -> None:
    """Under AMP: when the (unscaled) row gradient of any rank is not finite, make it so on every
    rank, so that every GradScaler skips the step and lowers its scale alike."""
    grad = head.weight.grad
    if head.world_size == 1 or grad is None:
        return
    bad = (~torch.isfinite(grad).all()).to(torch.float32).reshape(1)
    dist.all_reduce(bad, op=dist.ReduceOp.MAX, group=head.group)
    if bad.item() > 0:
        grad.fill_(math.nan)
