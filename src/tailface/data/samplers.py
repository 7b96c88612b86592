"""Samplers: the global order of image indices of an epoch, deterministic from ``(seed, epoch)``.

Every sampler has ``indices(epoch) -> int64 array`` and ``__len__`` (the length of that array).
The trainer cuts the order into global batches (see ``tailface.train.batches``).

- ``RandomSampler``: a permutation of all images.
- ``ClassAwareSampler``: class-aware resampling. An image of class ``c`` (``n_c`` images) is drawn
  with probability proportional to ``n_c^(-strength)``, so class ``c`` is drawn with probability
  ``n_c^(1 - strength) / sum_c' n_c'^(1 - strength)`` and, within a class, every image equally
  often. ``strength = 0``: instance sampling (every image equally likely); ``1``: class-balanced
  (every class equally likely). Draws are independent, with replacement; ``num_samples`` per epoch
  (default: the number of images).
- ``PKSampler``: consecutive blocks of ``P * K`` indices, ``P`` distinct identities x ``K`` images
  each (the identity's ``K`` images consecutive). Only identities with at least ``min_images``
  images (default 2: a single image gives no intra-class pair) take part. Identities are visited
  in rounds, each round a fresh random order of all eligible identities, so every identity is
  visited equally often (class-balanced). Each identity's images are shuffled once per epoch into
  a cycle, and its successive visits take the next ``K`` images of that cycle: ``K`` distinct
  images when it has at least ``K``, otherwise all its images, repeated as evenly as possible.
  An epoch holds ``num_samples // (P * K)`` blocks (default ``num_samples``: the number of images),
  at least one. Use a batch size that is a multiple of ``P * K`` (per rank under DDP) so that
  batches do not cut blocks.
"""

from __future__ import annotations

import numpy as np

SAMPLERS = ("random", "class_aware", "pk")


def _labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-d array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError("labels must be non-negative integers")
    return labels.astype(np.int64)


def _rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch)])


class RandomSampler:
    def __init__(self, labels, seed: int = 0):
        self.n = len(_labels(labels))
        self.seed = int(seed)

    def indices(self, epoch: int) -> np.ndarray:
        return _rng(self.seed, epoch).permutation(self.n).astype(np.int64)

    def __len__(self) -> int:
        return self.n


class ClassAwareSampler:
    def __init__(self, labels, strength: float = 1.0, seed: int = 0, num_samples: int | None = None):
        labels = _labels(labels)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"class-aware strength must lie in [0, 1], got {strength}")
        self.strength = float(strength)
        self.seed = int(seed)
        self.num_samples = len(labels) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        self.labels = labels
        counts = np.bincount(labels).astype(np.float64)
        weight = counts[labels] ** (-self.strength)
        self.image_probs = weight / weight.sum()

    def class_probs(self) -> np.ndarray:
        """Probability of drawing each class: ``n_c^(1 - strength)`` normalised (0 for absent labels)."""
        return np.bincount(self.labels, weights=self.image_probs)

    def indices(self, epoch: int) -> np.ndarray:
        rng = _rng(self.seed, epoch)
        return rng.choice(len(self.image_probs), size=self.num_samples, replace=True,
                          p=self.image_probs).astype(np.int64)

    def __len__(self) -> int:
        return self.num_samples


class PKSampler:
    def __init__(self, labels, p: int, k: int, seed: int = 0, num_samples: int | None = None,
                 min_images: int = 2):
        labels = _labels(labels)
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        if self.p < 1 or self.k < 1:
            raise ValueError(f"PK sampling needs p >= 1 and k >= 1, got p={p}, k={k}")
        counts = np.bincount(labels)
        self.identities = np.flatnonzero(counts >= max(int(min_images), 1))
        if len(self.identities) < self.p:
            raise ValueError(f"PK sampling needs p={self.p} identities with at least {min_images} images, "
                             f"the labels have {len(self.identities)}")
        order = np.argsort(labels, kind="stable")
        self._by_class = order  # image indices grouped by class
        self._start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._count = counts
        total = len(labels) if num_samples is None else int(num_samples)
        self.num_blocks = max(1, total // (self.p * self.k))

    def _identity_sequence(self, rng: np.random.Generator) -> np.ndarray:
        """``num_blocks * P`` identities in rounds of random orders, ``P`` distinct per block."""
        need = self.num_blocks * self.p
        out: list[np.ndarray] = []
        carry = np.empty(0, dtype=np.int64)  # start of a block not yet filled
        done = 0
        while done < need:
            perm = rng.permutation(self.identities)
            if len(carry):  # move identities already in the open block to the end of the round
                clash = np.isin(perm, carry)
                perm = np.concatenate([perm[~clash], perm[clash]])
            round_ = np.concatenate([carry, perm])
            usable = (len(round_) // self.p) * self.p
            out.append(round_[:usable])
            done += usable
            carry = round_[usable:]
        return np.concatenate(out)[:need]

    def indices(self, epoch: int) -> np.ndarray:
        rng = _rng(self.seed, epoch)
        ids = self._identity_sequence(rng)
        # each class's images shuffled once per epoch
        keys = rng.random(len(self._by_class))
        by_class = self._by_class[np.lexsort((keys, np.repeat(np.arange(len(self._count)), self._count)))]
        # visit number of each (block, identity) entry: its rank among earlier entries of that identity
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        first = np.searchsorted(sorted_ids, sorted_ids, side="left")
        visit = np.empty(len(ids), dtype=np.int64)
        visit[order] = np.arange(len(ids)) - first
        n = self._count[ids][:, None]
        offset = (visit[:, None] * self.k + np.arange(self.k)[None, :]) % n
        return by_class[self._start[ids][:, None] + offset].reshape(-1).astype(np.int64)

    def __len__(self) -> int:
        return self.num_blocks * self.p * self.k


def create_sampler(name: str, labels, **kwargs):
    """``random`` (seed), ``class_aware`` (strength, seed, num_samples), ``pk`` (p, k, seed,
    num_samples, min_images)."""
    builders = {"random": RandomSampler, "class_aware": ClassAwareSampler, "pk": PKSampler}
    if name not in builders:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    return builders[name](labels, **kwargs)
