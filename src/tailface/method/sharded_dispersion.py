"""The dispersion head (paper Eqs. 6-8, ``tailface.method.dispersion.DispersionHead``) with its rows
sharded across ranks.

The shard plan (:meth:`ShardPlan.dispersion`) puts every super class on one rank together with
all its member rows, so ``Phi_g`` (the mean of the member rows) and the log-sum-exp of the
members of a dispersed super class are computed where the rows are, with the same
``dispersed_linear`` kernel as the single-process head; the only collectives are the all-gather
of the batch and the three all-reduces of :func:`tailface.heads.sharded.sharded_softmax_loss`.
Dispersion is decided on the global batch: ``mode="sample"`` disperses each tail sample's own
super class, ``mode="batch"`` every super class with a tail sample anywhere in the global batch,
for every sample; margins and ``renormalize_phi`` as in ``DispersionHead``.

Negative sampling works on *units*, the columns of the aggregated softmax: head classes and whole
super classes. Rank ``r`` keeps ``max(ceil(sample_rate * units_r), P_r)`` of its units, ``P_r``
the units with a sample in the global batch (a tail sample makes its super class positive, which
is then kept with all its members); the softmax runs over the kept units only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tailface.heads.base import HeadOutput
from tailface.heads.margins import Margin, target_margin
from tailface.heads.normalize import normalize_rows
from tailface.heads.shard_plan import ShardPlan
from tailface.heads.sharded import (
    _ShardedBase,
    gather_batch,
    group_rank_and_size,
    load_full_weight,
    sample_units,
    sharded_softmax_loss,
)
from tailface.method.dispersed_linear import dispersed_linear
from tailface.method.dispersion import MODES, init_from_prototype


class _Structure:
    """Dispersion structure of a set of local rows: ``num_head`` head rows, then tail rows with
    their (structure-local) super classes; padded member table as in ``member_table``."""

    def __init__(self, num_head: int, super_of_tail: np.ndarray, num_super: int, rows: np.ndarray | None = None):
        self.num_head, self.num_super, self.rows = int(num_head), int(num_super), rows
        sot = np.asarray(super_of_tail, dtype=np.int64)
        sizes = np.bincount(sot, minlength=num_super)
        width = max(int(sizes.max()) if len(sizes) else 1, 1)
        order = np.argsort(sot, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        slot = np.empty(len(sot), dtype=np.int64)
        slot[order] = np.arange(len(sot)) - np.repeat(starts, sizes)
        members = np.zeros((num_super, width), dtype=np.int64)
        mask = np.zeros((num_super, width), dtype=bool)
        members[sot, slot] = np.arange(len(sot))
        mask[sot, slot] = True
        self.np_super_of_tail, self.np_slot = sot, slot
        self._host = {"super_of_tail": sot, "sizes": sizes.astype(np.float64), "members": members, "mask": mask,
                      "slot": slot}
        self._device: dict = {}

    def on(self, device) -> dict:
        key = str(device)
        if key not in self._device:
            self._device = {key: {name: torch.from_numpy(v).to(device) for name, v in self._host.items()}}
        return self._device[key]


class ShardedDispersionHead(_ShardedBase):
    """Class-sharded :class:`~tailface.method.dispersion.DispersionHead` (same arguments, plus
    ``sample_rate``, ``seed``, ``group``, ``init_std``).

    ``forward(local_features, local_labels, step=None) -> HeadOutput(loss, None, global_labels)``;
    labels as in ``DispersionHead``: head classes ``0 .. N_h - 1``, tail classes ``N_h + i``."""

    def __init__(self, embedding_size: int, num_head: int, super_of_tail, margin: Margin = Margin(),
                 mode: str = "sample", renormalize_phi: bool = False, sample_rate: float = 1.0,
                 seed: int = 0, group=None, init_std: float = 0.01):
        super().__init__()
        if not isinstance(margin, Margin):
            raise ValueError(f"margin must be a tailface.heads.margins.Margin, got {margin!r}")
        if mode not in MODES:
            raise ValueError(f"unknown dispersion mode {mode!r}; known: {', '.join(MODES)}")
        self.margin, self.mode, self.renormalize_phi = margin, mode, bool(renormalize_phi)
        rank, world = group_rank_and_size(group)
        plan = ShardPlan.dispersion(num_head, super_of_tail, world)
        self._setup(plan, rank, embedding_size, sample_rate, seed, group, init_std)
        assert plan.num_head is not None and plan.super_of_tail is not None and plan.super_rank is not None
        self.num_head, self.num_tail = plan.num_head, len(plan.super_of_tail)
        self.num_super = len(plan.super_rank)
        self.local = plan.local_dispersion(rank)
        self._full = _Structure(self.local.num_head, self.local.super_of_tail, self.local.num_super)

    def extra_repr(self) -> str:
        return (f"num_head={self.num_head}, num_tail={self.num_tail}, num_super={self.num_super}, margin="
                f"{self.margin.kind}, mode={self.mode}, rank={self.rank}/{self.world_size}, "
                f"rows={self.weight.shape[0]}, local_super={self.local.num_super}, sample_rate={self.sample_rate}")

    def _kept_structure(self, kept_units: np.ndarray) -> _Structure:
        """Sub-structure of the kept units (local head rows and local super classes)."""
        nh, full = self.local.num_head, self._full
        heads = kept_units[kept_units < nh]
        supers = kept_units[kept_units >= nh] - nh
        members, mask = full._host["members"][supers], full._host["mask"][supers]
        tails = members[mask]  # local tail indices, grouped by kept super class
        sub_super = np.repeat(np.arange(len(supers)), mask.sum(1))
        rows = np.concatenate([heads, nh + tails]).astype(np.int64)
        return _Structure(len(heads), sub_super, len(supers), rows)

    def forward(self, features: torch.Tensor, labels: torch.Tensor, step: int | None = None) -> HeadOutput:
        self._check_group()
        labels = labels.long()
        if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(f"expected {features.shape[0]} labels (one per feature), got shape {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels.min()}..{labels.max()}")
        dtype = torch.promote_types(features.dtype, torch.float32)
        with torch.autocast(features.device.type, enabled=False):
            f, y, _ = gather_batch(features.to(dtype), labels, self.group)
            loss = self._loss(f, self.weight.to(dtype), y, step)
        return HeadOutput(loss, None, y)

    def _loss(self, f: torch.Tensor, w: torch.Tensor, y: torch.Tensor, step: int | None) -> torch.Tensor:
        device = f.device
        nh_local = self.local.num_head
        y_np = y.cpu().numpy()
        owner, row = self.plan.locate(y_np)
        mine = np.flatnonzero(owner == self.rank)
        row = row[mine]  # local rows of this rank's targets
        step = self._sampling_step(step)
        self.last_kept = None
        st = self._full
        if step is not None:
            unit = row.copy()
            tail = row >= nh_local
            unit[tail] = nh_local + st.np_super_of_tail[row[tail] - nh_local]
            units = nh_local + self.local.num_super
            kept_units = sample_units(units, np.unique(unit), self.sample_rate, self.seed, step, self.rank)
            st = self._kept_structure(kept_units)
            kept_rows = st.rows
            assert kept_rows is not None  # a kept structure lists its rows
            self.last_kept = kept_rows
            remap = np.full(self.plan.rows(self.rank), -1, dtype=np.int64)
            remap[kept_rows] = np.arange(len(kept_rows))
            row = remap[row]
            w = w.index_select(0, torch.from_numpy(kept_rows).to(device))
        nh = st.num_head
        t = st.on(device)
        if self.margin.normalized:
            f, w = F.normalize(f, dim=1), normalize_rows(w)

        is_head = row < nh
        head_rows = torch.from_numpy(mine[is_head]).to(device)
        head_col = torch.from_numpy(row[is_head]).to(device)
        tail_rows = torch.from_numpy(mine[~is_head]).to(device)
        tail_class = torch.from_numpy(row[~is_head] - nh).to(device)
        tail_super = t["super_of_tail"][tail_class]
        common = (nh, t["super_of_tail"], t["sizes"].to(w.dtype))
        b = f.shape[0]
        if self.mode == "sample":
            pair_rows, pair_super = tail_rows, tail_super
            logits, member_logits = dispersed_linear(f, w, *common, t["members"][tail_super], tail_rows,
                                                     renormalize_phi=self.renormalize_phi)
            target_pair = torch.arange(len(tail_rows), device=device)
        else:
            active, inverse = torch.unique(tail_super, return_inverse=True)
            logits, grid = dispersed_linear(f, w, *common, t["members"][active], None,
                                            renormalize_phi=self.renormalize_phi)
            member_logits = grid.reshape(b * len(active), t["members"].shape[1])
            pair_rows = torch.arange(b, device=device).repeat_interleave(len(active))
            pair_super = active.repeat(b)
            target_pair = tail_rows * len(active) + inverse
        target_slot = t["slot"][tail_class]

        if self.margin.normalized:
            kind, m, easy = self.margin.kind, self.margin.value, self.margin.easy_margin
            head_target = target_margin(logits[head_rows, head_col], kind, m, easy)
            logits = logits.index_put((head_rows, head_col), head_target)
            tail_target = target_margin(member_logits[target_pair, target_slot], kind, m, easy)
            member_logits = member_logits.index_put((target_pair, target_slot), tail_target)
            logits, member_logits = logits * self.margin.scale, member_logits * self.margin.scale

        mask = t["mask"][pair_super]
        dispersed = member_logits.masked_fill(~mask, float("-inf")).logsumexp(dim=1)
        logits = logits.index_put((pair_rows, nh + pair_super), dispersed)
        # the target logit: the head column, or the target member's own logit (not the column,
        # which holds the whole super class)
        target = logits.new_zeros(b)
        target = target.index_put((head_rows,), logits[head_rows, head_col])
        target = target.index_put((tail_rows,), member_logits[target_pair, target_slot])
        owned = torch.zeros(b, dtype=torch.bool, device=device)
        owned[torch.from_numpy(mine).to(device)] = True
        return sharded_softmax_loss(logits, target, owned, self.group)


def create_sharded_dispersion_head(embedding_size: int, num_head: int, super_of_tail, prototype_weight=None,
                                   **kwargs) -> ShardedDispersionHead:
    """A :class:`ShardedDispersionHead`, its rows initialised from ``prototype_weight`` (the full
    ``(N_h + N_k) x d`` prototype classifier, as for ``create_dispersion_head``) when given."""
    head = ShardedDispersionHead(embedding_size, num_head, super_of_tail, **kwargs)
    if prototype_weight is not None:
        load_full_weight(head, init_from_prototype(prototype_weight, super_of_tail, num_head))
    return head
