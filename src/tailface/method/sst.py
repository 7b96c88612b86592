"""Semi-Siamese Training (Du et al., ECCV 2020, "Semi-Siamese Training for Shallow Face Learning").

Two networks of one architecture: the *probe* network ``f`` (trained by SGD; the model that is
saved and evaluated) and the *gallery* network ``g``, a moving average of the probe (parameters
only; the gallery's batch-norm layers normalise with their own batch statistics, see below)::

    theta_g <- alpha * theta_g + (1 - alpha) * theta_f                    (alpha = momentum, 0.999)

A step takes ``P`` identity pairs ``(x1_i, x2_i, y_i)`` (the global batch; two images of one
identity, or one image and its augmented copy: :func:`second_views`). A *prototype queue* of ``Q``
unit gallery features with their labels (-1: empty) and a pointer ``ptr`` replaces the classifier,
so the cost of a step does not depend on the number of identities. Pair ``i`` owns the slot
``S_i = (ptr + i) mod Q``. For the direction ``(a, b)`` in ``{(1, 2), (2, 1)}`` the working queue
``K^b`` is the queue with slot ``S_i`` holding ``q_i = g(x_b,i) / |g(x_b,i)|`` (label ``y_i``), and
for the unit probe feature ``p_i = f(x_a,i) / |f(x_a,i)|``::

    c_ij = p_i . K^b_j
    z_ij = s * psi(c_ij)  if j = S_i,   s * c_ij  otherwise         (psi: heads/margins.py margin_logits)
    z_ij = -inf  if label_j = -1 (empty slot), or label_j = y_i and j != S_i (the same identity: no negative)
    L_a  = mean_i  -log( exp z_{i S_i} / sum_j exp z_ij )
    L    = (L_1 + L_2) / 2                                               (the two views swapped)

The gradient flows into the probe features only (gallery and queue carry none). After the loss,
the gallery features of one view (a coin per step, as FaceX-Zoo) are written to the slots ``S``
with their labels and ``ptr <- (ptr + P) mod Q`` (FIFO, wrapping around).

Batch norm (shuffle-BN, after MoCo): the global batch of each view is split into ``W * G`` groups
(``W`` ranks, ``G = bn_splits`` per rank), each normalised with its own statistics. The probe's
groups are consecutive pairs (rank ``r``'s pairs, cut into ``G``); the gallery's are consecutive
pairs of a random permutation of the global batch (gathered from every rank and scattered back),
so a probe feature and its positive prototype are normalised over different sets of pairs. With
``W * G = 1`` (one process, the default) both branches see the whole batch and nothing is shuffled.
The gallery's batch-norm layers always normalise with batch statistics (the rest of it in eval
mode, as FaceX-Zoo); its running statistics are its own (updated by its forward passes, never
averaged from the probe), are never used in training, and are saved with it.

Randomness (view shifts, permutations, the coin) comes from ``numpy.random.default_rng([seed,
step])`` with the step count kept in the module's state, so it is identical on every rank and a
resumed run draws what the uninterrupted one drew. docs/method.md ("Semi-Siamese Training") has
the sources and the decisions.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tailface.errors import ConfigError
from tailface.heads.base import HeadOutput
from tailface.heads.margins import Margin, margin_logits
from tailface.heads.sharded import group_rank_and_size
from tailface.train.distributed import gather_cat

DEFAULT_MARGIN = Margin("cosface", scale=32.0, value=0.35)  # FaceX-Zoo's SST_Prototype (am_softmax)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def unit(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length."""
    return F.normalize(x, dim=1)


def queue_slots(ptr: int, count: int, size: int, device=None) -> torch.Tensor:
    """The slots ``(ptr + i) mod size`` of ``count`` consecutive entries."""
    return (ptr + torch.arange(count, device=device)) % size


def working_queue(queue: torch.Tensor, queue_labels: torch.Tensor, ptr: int, gallery: torch.Tensor,
                  labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prototypes, labels)``: the queue with the step's slots holding ``gallery`` (``P x E``,
    unit rows) and ``labels`` (the queue itself is not changed)."""
    slots = queue_slots(ptr, gallery.shape[0], queue.shape[0], queue.device)
    prototypes, prototype_labels = queue.clone(), queue_labels.clone()
    prototypes[slots] = gallery.detach().to(queue.dtype)
    prototype_labels[slots] = labels
    return prototypes, prototype_labels


def prototype_logits(probe: torch.Tensor, prototypes: torch.Tensor, prototype_labels: torch.Tensor,
                     labels: torch.Tensor, targets: torch.Tensor, margin: Margin) -> torch.Tensor:
    """``n x Q`` logits of the probe features (raw) over the prototypes (unit rows): ``s * cos``
    with the margin at the target columns, ``-inf`` at empty slots and at the other slots of the
    sample's own identity."""
    cos = unit(probe) @ prototypes.to(probe.dtype).t()
    logits = margin_logits(cos, targets, margin.kind, margin.scale, margin.value, margin.easy_margin)
    columns = torch.arange(prototypes.shape[0], device=probe.device)
    own = (prototype_labels[None, :] == labels[:, None]) & (columns[None, :] != targets[:, None])
    return logits.masked_fill(own | (prototype_labels[None, :] < 0), float("-inf"))


def semi_siamese_loss(p1: torch.Tensor, p2: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor,
                      labels: torch.Tensor, queue: torch.Tensor, queue_labels: torch.Tensor, ptr: int,
                      margin: Margin, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L, logits of direction 1, targets)`` (module docstring). ``p1``, ``p2``: this rank's
    probe features (raw, ``n x E``) of its pairs ``offset .. offset + n - 1``; ``g1``, ``g2``: the
    unit gallery features of the global batch (``P x E``), ``labels`` its ``P`` labels."""
    n, size = p1.shape[0], queue.shape[0]
    targets = queue_slots(ptr + offset, n, size, p1.device)
    own = labels[offset:offset + n]
    losses, first = [], None
    for probe, gallery in ((p1, g2), (p2, g1)):
        prototypes, prototype_labels = working_queue(queue, queue_labels, ptr, gallery, labels)
        logits = prototype_logits(probe, prototypes, prototype_labels, own, targets, margin)
        losses.append(F.cross_entropy(logits, targets))
        first = logits if first is None else first
    assert first is not None
    return (losses[0] + losses[1]) / 2, first, targets


@torch.no_grad()
def enqueue(queue: torch.Tensor, queue_labels: torch.Tensor, ptr: int, features: torch.Tensor,
            labels: torch.Tensor) -> int:
    """Write ``features`` (unit rows) and ``labels`` to the slots ``(ptr + i) mod Q`` (in place,
    the oldest entries replaced); returns the new pointer ``(ptr + P) mod Q``."""
    slots = queue_slots(ptr, features.shape[0], queue.shape[0], queue.device)
    queue[slots] = features.to(queue.dtype)
    queue_labels[slots] = labels
    return (ptr + features.shape[0]) % queue.shape[0]


@torch.no_grad()
def momentum_update(gallery: nn.Module, probe: nn.Module, alpha: float) -> None:
    """``theta_g <- alpha * theta_g + (1 - alpha) * theta_f`` for every parameter; buffers (batch
    norm running statistics) are not touched."""
    for g, p in zip(gallery.parameters(), probe.parameters(), strict=True):
        g.mul_(alpha).add_(p.detach(), alpha=1.0 - alpha)


def same_picture(view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
    """Per pair: whether the two views are one picture (equal, or mirror images of each other)."""
    return (view1 == view2).flatten(1).all(1) | (view1 == view2.flip(-1)).flatten(1).all(1)


def second_views(view1: torch.Tensor, view2: torch.Tensor, offsets: np.ndarray, shift: int) -> torch.Tensor:
    """``view2`` with an augmented copy of ``view1`` where the pair is one picture (an identity
    with one image, drawn twice): ``view1`` mirrored, then moved by ``(dy - shift, dx - shift)``
    pixels (``offsets[i] = (dy, dx)`` in ``[0, 2 shift]``; edges replicated). Other pairs keep
    their second image."""
    same = same_picture(view1, view2)
    if not bool(same.any()):
        return view2
    h, w = view1.shape[-2:]
    mirrored = view1.flip(-1)
    padded = F.pad(mirrored, (shift, shift, shift, shift), mode="replicate") if shift else mirrored
    out = view2.clone()
    for i in same.nonzero()[:, 0].tolist():
        dy, dx = int(offsets[i][0]), int(offsets[i][1])
        out[i] = padded[i, :, dy:dy + h, dx:dx + w]
    return out


def run_in_groups(net: nn.Module, x: torch.Tensor, groups: int) -> torch.Tensor:
    """``net`` on ``groups`` equal consecutive parts of ``x`` (each its own batch-norm
    statistics), the outputs concatenated."""
    if groups == 1:
        return net(x)
    return torch.cat([net(part) for part in x.chunk(groups)])


@torch.no_grad()
def shuffled_gallery_features(gallery: nn.Module, views: torch.Tensor, groups: int,
                              order: torch.Tensor | None) -> torch.Tensor:
    """Unit gallery features of the global batch (``P x E``, pair order) from this rank's
    ``views``: shuffle-BN. ``order`` (a permutation of the ``P`` global pairs, the same on every
    rank; None for one process and one group): rank ``r`` runs the pairs ``order[r n .. (r+1) n - 1]``
    in ``groups`` groups, the outputs are gathered and put back in pair order."""
    if order is None:
        return unit(run_in_groups(gallery, views, groups))
    rank, _ = group_rank_and_size()
    n = views.shape[0]
    everything = gather_cat(views)
    shuffled = gather_cat(run_in_groups(gallery, everything[order[rank * n:(rank + 1) * n]], groups))
    features = torch.empty_like(shuffled)
    features[order] = shuffled
    return unit(features)


def gallery_mode(net: nn.Module) -> None:
    """Eval mode (no dropout) except the batch-norm layers, which normalise with batch statistics."""
    net.eval()
    for m in net.modules():
        if isinstance(m, _BATCH_NORMS):
            m.train()


class SemiSiamese(nn.Module):
    """The SST objective: the gallery network, the prototype queue and the loss (module docstring).

    A trainer objective (``train/trainer.py``, the image hook): ``forward_images(probe, images,
    labels)`` takes a batch of identity pairs (images ``2i`` and ``2i + 1`` of one identity: the
    pair sampler, ``pk`` with ``k = 2``), runs both networks and returns the loss. Its state
    (``state_dict``: the gallery network, ``queue``, ``queue_labels``, ``queue_ptr``, ``steps``)
    goes into ``last.pt`` with the head's. The probe is the trainer's model."""

    queue: torch.Tensor
    queue_labels: torch.Tensor
    queue_ptr: torch.Tensor
    steps: torch.Tensor

    def __init__(self, probe: nn.Module, embedding_size: int, *, momentum: float = 0.999, queue_size: int = 16384,
                 margin: Margin = DEFAULT_MARGIN, bn_splits: int = 1, view_shift: float = 0.1, seed: int = 0):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if queue_size < 1 or bn_splits < 1:
            raise ValueError(f"queue_size and bn_splits must be positive, got {queue_size}, {bn_splits}")
        if not 0.0 <= view_shift < 0.5:
            raise ValueError(f"view_shift must lie in [0, 0.5), got {view_shift}")
        self.gallery = copy.deepcopy(probe).requires_grad_(False)  # starts as the probe (FaceX-Zoo)
        self.momentum, self.margin, self.bn_splits = float(momentum), margin, int(bn_splits)
        self.view_shift, self.seed = float(view_shift), int(seed)
        self.register_buffer("queue", torch.zeros(queue_size, embedding_size))
        self.register_buffer("queue_labels", torch.full((queue_size,), -1, dtype=torch.int64))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.int64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def extra_repr(self) -> str:
        m = self.margin
        return (f"queue_size={self.queue.shape[0]}, momentum={self.momentum}, margin={m.kind}, m={m.value}, "
                f"scale={m.scale}, bn_splits={self.bn_splits}, view_shift={self.view_shift}")

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        raise TypeError("SemiSiamese runs the backbone itself: call forward_images(probe, images, labels)")

    def forward_images(self, probe: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> HeadOutput:
        """One step on this rank's pairs: the momentum update (the one that follows the previous
        optimizer step), the gallery features of the global batch, the loss, the queue update."""
        if images.shape[0] % 2 or not torch.equal(labels[0::2], labels[1::2]):
            raise ValueError("semi-siamese training takes identity pairs: images 2i and 2i+1 of one identity "
                             "(the pair sampler: pk with k = 2)")
        view1, view2, labels = images[0::2], images[1::2], labels[0::2]
        n = view1.shape[0]
        rank, world = group_rank_and_size()
        pairs, offset, size = n * world, n * rank, self.queue.shape[0]
        if n % self.bn_splits:
            raise ConfigError(f"sst.bn_splits {self.bn_splits} must divide the {n} pairs of each of the {world} "
                              "processes")
        if pairs > size:
            raise ConfigError(f"sst.queue_size {size} is smaller than the {pairs} pairs of a batch")
        rng = np.random.default_rng([self.seed, int(self.steps)])
        shift = round(self.view_shift * min(images.shape[-2:]))
        offsets = rng.integers(0, 2 * shift + 1, size=(pairs, 2))[offset:offset + n]
        orders = [torch.from_numpy(rng.permutation(pairs)).to(images.device) for _ in range(2)]
        keep_first = bool(rng.random() < 0.5)  # which view's gallery features enter the queue
        shuffled = world * self.bn_splits > 1

        momentum_update(self.gallery, probe, self.momentum)
        view2 = second_views(view1, view2, offsets, shift)
        gallery_mode(self.gallery)
        g1 = shuffled_gallery_features(self.gallery, view1, self.bn_splits, orders[0] if shuffled else None)
        g2 = shuffled_gallery_features(self.gallery, view2, self.bn_splits, orders[1] if shuffled else None)
        p1 = run_in_groups(probe, view1, self.bn_splits)
        p2 = run_in_groups(probe, view2, self.bn_splits)
        everyone = gather_cat(labels)
        ptr = int(self.queue_ptr)
        loss, logits, targets = semi_siamese_loss(p1, p2, g1, g2, everyone, self.queue, self.queue_labels, ptr,
                                                  self.margin, offset)
        self.queue_ptr.fill_(enqueue(self.queue, self.queue_labels, ptr, g1 if keep_first else g2, everyone))
        self.steps += 1
        return HeadOutput(loss, logits, targets)
