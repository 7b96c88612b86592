"""Uniform and long-tail subsets of a labelled dataset, as sorted arrays of image indices: the
paper's Fig. 3 study, two training sets with the same number of identities AND images, one with
(nearly) equal images per identity and one long-tailed.

The long-tail profile is a power law: the identity of rank ``k`` of ``N`` gets about
``(N / k) ** alpha`` images (so the last has one), capped by the size of the ``k``-th largest class
of the data (and an optional maximum), with ``alpha`` solved so the sizes add up to the requested
image count; identities are then drawn at random among those with enough images for their rank.

The draws take their numpy generator from the caller: :mod:`tailface.data.training_set` makes it
(``data.sample`` and ``tailface subset --uniform/--long-tail``: ``default_rng(seed)``) and
selects long-tail groups.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tailface.errors import ConfigError


def _class_counts(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or (len(labels) and labels.min() < 0):
        raise ValueError("labels must be a 1-D array of non-negative class ids")
    return np.bincount(labels)


def uniform_subset(labels, num_identities: int, num_images: int, rng: np.random.Generator) -> np.ndarray:
    """``num_identities`` random identities with ``num_images // num_identities`` random images
    each (the remainder spread as one extra image over as many identities), drawn by ``rng``: the
    identities with an extra image, the others, then each one's images in ascending class order."""
    counts = _class_counts(labels)
    _check_sizes(num_identities, num_images)
    per, extra = divmod(num_images, num_identities)
    richer = np.flatnonzero(counts >= per + 1) if extra else np.array([], dtype=np.int64)
    if len(richer) < extra:
        raise ConfigError(f"a uniform subset needs {extra} identities with >= {per + 1} images; "
                          f"the data has {len(richer)}")
    chosen_extra = rng.choice(richer, size=extra, replace=False) if extra else richer
    rest = np.setdiff1d(np.flatnonzero(counts >= per), chosen_extra)
    if len(rest) < num_identities - extra:
        raise ConfigError(f"a uniform subset of {num_images} images over {num_identities} identities "
                          f"needs {num_identities} identities with >= {per} images; the data has "
                          f"{len(rest) + extra}")
    chosen = rng.choice(rest, size=num_identities - extra, replace=False)
    sizes = {int(c): per + 1 for c in chosen_extra} | {int(c): per for c in chosen}
    return _draw_images(labels, sizes, rng)


def long_tail_sizes(num_identities: int, num_images: int, caps) -> np.ndarray:
    """Power-law class sizes, descending, summing to ``num_images``: rank ``k`` of ``N`` gets
    about ``min(caps[k], (N / k) ** alpha)`` images, so the smallest class has one image.
    ``caps`` is the largest class allowed, or one bound per rank (descending: the sizes of the
    available classes, largest first)."""
    _check_sizes(num_identities, num_images)
    n = num_identities
    caps = np.broadcast_to(np.asarray(caps, dtype=np.int64), (n,)) if np.ndim(caps) == 0 else np.asarray(caps)
    if len(caps) < n or caps[:n].min() < 1:
        raise ConfigError(f"a long-tail subset of {n} identities needs {n} identities with images; "
                          f"the data has {int((caps > 0).sum())}")
    caps = caps[:n].astype(np.float64)
    if caps[:-1].sum() + 1 < num_images:
        raise ConfigError(f"{num_images} images over {n} identities (the last with one image) need "
                          f"more images than the largest {n - 1} classes hold ({int(caps[:-1].sum())})")
    ratio = n / np.arange(1, n + 1, dtype=np.float64)

    def sizes(alpha: float) -> np.ndarray:
        return np.minimum(caps, ratio ** alpha)

    lo, hi = 0.0, 1.0
    while sizes(hi).sum() < num_images:
        hi *= 2
    for _ in range(200):  # sum(sizes(alpha)) grows with alpha: bisect for the exact total
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if sizes(mid).sum() >= num_images else (mid, hi)
    real = sizes(lo)
    whole = np.floor(real).astype(np.int64)
    short = num_images - int(whole.sum())
    whole[np.argsort(-(real - whole), kind="stable")[:short]] += 1  # largest remainders
    whole = np.sort(whole)[::-1]
    # entries with a remainder lie strictly between 1 and their cap, so rounding stays in range
    assert whole.sum() == num_images and (whole <= caps).all() and whole[-1] >= 1, whole
    return whole


def long_tail_subset(labels, num_identities: int, num_images: int, rng: np.random.Generator,
                     max_per_class: int | None = None) -> np.ndarray:
    """``num_identities`` identities and ``num_images`` images with power-law class sizes (see the
    module doc), rank ``k`` bounded by the ``k``-th largest class of the data and by
    ``max_per_class``; drawn by ``rng``: one identity per rank (largest first), then the images in
    ascending class order."""
    counts = _class_counts(labels)
    caps = np.sort(counts)[::-1][:num_identities]
    if max_per_class is not None:
        caps = np.minimum(caps, int(max_per_class))
    targets = long_tail_sizes(num_identities, num_images, caps)
    by_size = np.argsort(-counts, kind="stable")
    pool: list[int] = []
    next_class = 0
    sizes = {}
    for target in targets:  # descending: the eligible pool only grows, and never runs dry
        while next_class < len(by_size) and counts[by_size[next_class]] >= target:
            pool.append(int(by_size[next_class]))
            next_class += 1
        pick = int(rng.integers(len(pool)))
        pool[pick], pool[-1] = pool[-1], pool[pick]
        sizes[pool.pop()] = int(target)
    return _draw_images(labels, sizes, rng)


def _draw_images(labels, sizes: Mapping[int, int], rng: np.random.Generator) -> np.ndarray:
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(labels.max() + 2))
    picked = []
    for cls in sorted(sizes):
        members = order[starts[cls]:starts[cls + 1]]
        picked.append(rng.choice(members, size=sizes[cls], replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def _check_sizes(num_identities: int, num_images: int) -> None:
    if num_identities < 1 or num_images < num_identities:
        raise ConfigError(f"need 1 <= identities <= images, got {num_identities} identities and "
                          f"{num_images} images")
