"""Step II: the dispersion softmax (paper Eqs. 6-8) without the ``B x N`` logit matrix.

Label space of the dispersion stage: head classes are ``0 .. N_h-1``, tail classes are
``N_h .. N_h+N_t-1``; ``super_of_tail[i]`` is the super class (``0 .. N_k-1``) of tail class
``N_h + i``. The classifier ``weight`` has ``N_h + N_t`` rows in that order.

For a sample with feature ``f`` and label ``k`` the loss is ``-log p`` with (Eq. 6, head ``k``)::

    p = exp(w_k.f) / (sum_{i head} exp(w_i.f) + sum_g exp(Phi_g.f))

and (Eq. 8, tail ``k`` of super class ``g(k)``)::

    p = exp(w_k.f) / (sum_{i head} exp(w_i.f) + sum_{i in g(k)} exp(w_i.f) + sum_{g != g(k)} exp(Phi_g.f))

with ``Phi_g`` the mean of the member rows (Eq. 7). Computation: logits of ``f`` against
``[W_head; Phi]`` (``B x (N_h + N_k)``), then the column of a dispersed super class is replaced by
the log-sum-exp of its members' logits (members gathered through a padded ``N_k x m`` table).
``mode="sample"`` disperses only the sample's own super class (the equations); ``mode="batch"``
disperses every super class that has a sample in the batch, for every sample.

Margins ("ArcFace + ours"): features and rows are L2-normalised, logits are ``s * cos``, the
margin applies to the target logit only (the member logit of the target for tail samples).
``Phi_g`` is the mean of the normalised member rows; ``renormalize_phi`` projects it back onto the
sphere (off by default: the mean of the member rows is what the equations define, and its shorter
length down-weights a super class whose members have spread apart, see docs/method.md).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tailface.heads.base import HeadOutput
from tailface.heads.margins import Margin, target_margin
from tailface.heads.normalize import normalize_rows
from tailface.method.dispersed_linear import dispersed_linear

MODES = ("sample", "batch")


def member_table(super_of_tail: np.ndarray, num_super: int | None = None):
    """Padded members of every super class.

    Returns ``(members, mask, slot)``: ``members`` (``N_k x m`` int64, tail indices, padding 0),
    ``mask`` (``N_k x m`` bool, True on real entries) and ``slot`` (``N_t``: position of each tail
    class in its super class's row), ``m`` = size of the largest super class."""
    super_of_tail = np.asarray(super_of_tail, dtype=np.int64)
    num_super = int(super_of_tail.max()) + 1 if num_super is None else num_super
    sizes = np.bincount(super_of_tail, minlength=num_super)
    if len(sizes) > num_super or (sizes == 0).any():
        raise ValueError(f"super classes must be 0..{num_super - 1}, each with at least one tail class")
    order = np.argsort(super_of_tail, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    slot = np.empty(len(super_of_tail), dtype=np.int64)
    slot[order] = np.arange(len(order)) - np.repeat(starts, sizes)
    width = int(sizes.max())
    members = np.zeros((num_super, width), dtype=np.int64)
    mask = np.zeros((num_super, width), dtype=bool)
    members[super_of_tail, slot] = np.arange(len(super_of_tail))
    mask[super_of_tail, slot] = True
    return members, mask, slot


class DispersionHead(nn.Module):
    """Dispersion softmax over ``N_h`` head and ``N_t`` tail classes grouped into ``N_k`` super
    classes. ``forward(features, labels) -> HeadOutput(loss, logits, targets)`` where ``logits``
    is the ``B x (N_h + N_k)`` matrix after substitution and ``targets`` the target's column
    (head: its class; tail: ``N_h + g(k)``)."""

    # buffers, registered in __init__
    super_of_tail: torch.Tensor
    members: torch.Tensor
    member_mask: torch.Tensor
    slot_of_tail: torch.Tensor
    super_sizes: torch.Tensor

    def __init__(self, embedding_size: int, num_head: int, super_of_tail, margin: Margin = Margin(),
                 mode: str = "sample", renormalize_phi: bool = False):
        super().__init__()
        if not isinstance(margin, Margin):
            raise ValueError(f"margin must be a tailface.heads.margins.Margin, got {margin!r}")
        if mode not in MODES:
            raise ValueError(f"unknown dispersion mode {mode!r}; known: {', '.join(MODES)}")
        super_of_tail = np.asarray(super_of_tail, dtype=np.int64)
        if super_of_tail.ndim != 1 or len(super_of_tail) == 0:
            raise ValueError("super_of_tail must be a non-empty 1-d array (one super class per tail class)")
        members, mask, slot = member_table(super_of_tail)
        self.num_head = int(num_head)
        self.num_tail = len(super_of_tail)
        self.num_super = members.shape[0]
        self.margin, self.mode, self.renormalize_phi = margin, mode, bool(renormalize_phi)
        self.weight = nn.Parameter(torch.empty(self.num_head + self.num_tail, embedding_size))
        nn.init.normal_(self.weight, std=0.01)
        self.register_buffer("super_of_tail", torch.from_numpy(super_of_tail))
        self.register_buffer("members", torch.from_numpy(members))
        self.register_buffer("member_mask", torch.from_numpy(mask))
        self.register_buffer("slot_of_tail", torch.from_numpy(slot))
        sizes = np.bincount(super_of_tail, minlength=self.num_super)
        self.register_buffer("super_sizes", torch.from_numpy(sizes).float())

    @property
    def num_classes(self) -> int:
        return self.num_head + self.num_tail

    def extra_repr(self) -> str:
        return (f"num_head={self.num_head}, num_tail={self.num_tail}, num_super={self.num_super}, "
                f"margin={self.margin.kind}, mode={self.mode}, renormalize_phi={self.renormalize_phi}")

    def super_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """``Phi``: segment mean of the tail rows of ``weight`` per super class (``N_k x d``)."""
        tail = weight[self.num_head:]
        phi = tail.new_zeros(self.num_super, tail.shape[1]).index_add(0, self.super_of_tail, tail)
        phi = phi / self.super_sizes.to(phi.dtype)[:, None]
        return F.normalize(phi, dim=1) if self.renormalize_phi else phi

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        dtype = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            return self._forward(features.to(dtype), self.weight.to(dtype), labels)

    def _forward(self, f: torch.Tensor, w: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        nh = self.num_head
        margin = self.margin
        if margin.normalized:
            f, w = F.normalize(f, dim=1), normalize_rows(w)
        labels = labels.long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels.min()}..{labels.max()}")
        rows = torch.arange(len(labels), device=labels.device)
        is_tail = labels >= nh
        head_rows, tail_rows = rows[~is_tail], rows[is_tail]
        tail_class = labels[tail_rows] - nh
        tail_super = self.super_of_tail[tail_class]
        target_col = labels.clone()
        target_col[tail_rows] = nh + tail_super

        # logits against [W_head; Phi] (B x (N_h + N_k)) and member logits of the dispersed
        # (row, super class) pairs (P x m)
        common = (nh, self.super_of_tail, self.super_sizes)
        if self.mode == "sample":
            pair_rows, pair_super = tail_rows, tail_super
            logits, member_logits = dispersed_linear(f, w, *common, self.members[tail_super], tail_rows,
                                                     renormalize_phi=self.renormalize_phi)
            target_pair = torch.arange(len(tail_rows), device=labels.device)
        else:
            active, inverse = torch.unique(tail_super, return_inverse=True)
            logits, grid = dispersed_linear(f, w, *common, self.members[active], None,
                                            renormalize_phi=self.renormalize_phi)  # B x (A*m)
            member_logits = grid.reshape(len(labels) * len(active), self.members.shape[1])
            pair_rows = rows.repeat_interleave(len(active))
            pair_super = active.repeat(len(labels))
            target_pair = tail_rows * len(active) + inverse
        target_slot = self.slot_of_tail[tail_class]

        # margin on the target logit only, then scale
        if margin.normalized:
            kind, m, easy = margin.kind, margin.value, margin.easy_margin
            head_target = target_margin(logits[head_rows, labels[head_rows]], kind, m, easy)
            logits = logits.index_put((head_rows, labels[head_rows]), head_target)
            tail_target = target_margin(member_logits[target_pair, target_slot], kind, m, easy)
            member_logits = member_logits.index_put((target_pair, target_slot), tail_target)
            logits, member_logits = logits * margin.scale, member_logits * margin.scale

        mask = self.member_mask[pair_super]
        dispersed = member_logits.masked_fill(~mask, float("-inf")).logsumexp(dim=1)
        logits = logits.index_put((pair_rows, nh + pair_super), dispersed)
        # -log p = logsumexp(row) - target logit. Written as the fused cross-entropy at the target
        # column plus, for tail samples, (column value - own member logit): the column holds the
        # log-sum-exp of the whole super class, the numerator is the target member alone.
        loss = F.cross_entropy(logits, target_col, reduction="sum")
        own = member_logits[target_pair, target_slot]
        loss = (loss + (dispersed[target_pair] - own).sum()) / len(labels)
        return HeadOutput(loss, logits, target_col)


def init_from_prototype(prototype_weight: torch.Tensor, super_of_tail, num_head: int) -> torch.Tensor:
    """Initial dispersion classifier (``(N_h + N_t) x d``): head rows copy their own prototype row,
    tail row ``i`` copies the row of its super class (prototype row ``N_h + super_of_tail[i]``)."""
    prototype_weight = torch.as_tensor(prototype_weight)
    super_of_tail = torch.as_tensor(np.asarray(super_of_tail, dtype=np.int64))
    num_super = prototype_weight.shape[0] - num_head
    if len(super_of_tail) and (super_of_tail.min() < 0 or super_of_tail.max() >= num_super):
        raise ValueError(f"super classes must lie in [0, {num_super}) for a prototype of "
                         f"{prototype_weight.shape[0]} rows and {num_head} head classes")
    return torch.cat([prototype_weight[:num_head], prototype_weight[num_head + super_of_tail]]).clone()


def create_dispersion_head(embedding_size: int, num_head: int, super_of_tail, prototype_weight=None,
                           **kwargs) -> DispersionHead:
    """A :class:`DispersionHead`, its rows initialised from ``prototype_weight`` when given."""
    head = DispersionHead(embedding_size, num_head, super_of_tail, **kwargs)
    if prototype_weight is not None:
        with torch.no_grad():
            head.weight.copy_(init_from_prototype(prototype_weight, super_of_tail, num_head))
    return head
