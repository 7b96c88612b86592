"""Noise: a share of the tail images (groups C and D) carry a wrong identity.

Two kinds, mixed by ``open_share`` (the share of the noisy images that are open-set):

- **open-set**: the image is replaced by an image of a person held out of training. The outside
  pool is made of whole tail identities of the set itself, drawn at random (never one touched by
  the split: a split-off identity or the identity it came from is a person still in training) and
  removed from training with all their images; each outside image replaces one noisy image and
  takes its identity. An identity keeps its size, one of its images now shows a stranger.
- **closed-set**: the image is given the identity of another tail image that is noisy too, a
  derangement of their labels, so that every identity keeps its size and the group table does
  not change: only the labels are wrong. With the noisy images ordered by a random rank of their
  identity, image ``k`` takes the label of image ``(k + m) mod n``, ``m`` the most images one
  identity has among the ``n``; no image keeps its own identity when ``2 m <= n`` (otherwise a
  ConfigError: too few identities among the noisy images).

Counts: with ``T`` tail images of which ``O`` are held out, ``n = round(share * (T - O))`` of the
``T - O`` tail images left in training are noisy, ``round(open_share * n)`` of them open-set. The
outside identities are added one by one until ``O >= round(open_share * round(share * (T - O)))``.

Draws: the outside stream (``default_rng([seed, OUTSIDE_STREAM])``): ``permutation(candidate
classes)``, taken in that order, their images in source order, the first ones used. The noise
stream (``default_rng([seed, NOISE_STREAM])``): ``permutation(tail images left)[:n]`` (the first
``round(open_share * n)`` open-set, the others closed-set), then ``permutation(classes)`` as the
rank of each identity.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from tailface.data.groups import TAIL_GROUPS, GroupThresholds
from tailface.data.perturb.labelling import Labelling
from tailface.errors import ConfigError

OUTSIDE_STREAM = 2202
NOISE_STREAM = 2203


def outside_rng(seed: int) -> np.random.Generator:
    """The generator of the outside (held-out) identities: ``default_rng([seed, 2202])``."""
    return np.random.default_rng([int(seed), OUTSIDE_STREAM])


def noise_rng(seed: int) -> np.random.Generator:
    """The generator of the noisy images and the identity ranks: ``default_rng([seed, 2203])``."""
    return np.random.default_rng([int(seed), NOISE_STREAM])


def check_noise(share: float, open_share: float) -> None:
    """ConfigError unless both shares are in [0, 1]."""
    if not 0 <= share <= 1:
        raise ConfigError(f"--tail-noise: the share of tail images must be in [0, 1], got {share}")
    if not 0 <= open_share <= 1:
        raise ConfigError(f"--tail-noise: the open-set share must be in [0, 1], got {open_share}")


def tail_noise(lab: Labelling, share: float, open_share: float, thresholds: GroupThresholds, seed: int,
               protected: Collection[str] = ()) -> tuple[Labelling, dict]:
    """The noise of the module doc on ``lab`` (``protected``: identities never held out): the new
    Labelling and the manifest section ``{"share", "open", "tail_images", "noisy", "outside":
    [{"identity", "images": [ids]}], "relabelled": [{"image", "from", "to"}], "replaced":
    [{"image", "identity", "by", "by_identity"}]}``."""
    check_noise(share, open_share)
    counts = lab.counts()
    tail = np.isin(lab.groups(thresholds), TAIL_GROUPS)
    if not tail.any():
        raise ConfigError(f"--tail-noise: no tail identity (groups C and D, < {thresholds.b} images) to add "
                          f"noise to")

    def wanted(held_images: int) -> tuple[int, int]:
        n = int(round(share * (int(counts[tail].sum()) - held_images)))
        return n, int(round(open_share * n))

    eligible = np.array([c for c in np.flatnonzero(tail) if lab.names[c] not in protected], dtype=np.int64)
    candidates = outside_rng(seed).permutation(eligible)
    held, held_images = 0, 0
    while wanted(held_images)[1] > held_images:
        if held == len(candidates):
            raise ConfigError(f"--tail-noise: open-set noise needs {wanted(held_images)[1]} images of held-out "
                              f"people, and the tail identities that may leave training hold only {held_images}")
        held_images += int(counts[candidates[held]])
        held += 1
    outside = np.sort(candidates[:held])
    n, n_open = wanted(held_images)
    rng = noise_rng(seed)
    left = np.flatnonzero(tail[lab.labels] & ~np.isin(lab.labels, outside))
    noisy = rng.permutation(left)[:n]
    opened, closed = np.sort(noisy[:n_open]), noisy[n_open:]

    labels, images = lab.labels.copy(), lab.images.copy()
    if len(closed):
        most = int(np.bincount(lab.labels[closed]).max())
        if 2 * most > len(closed):
            raise ConfigError(f"--tail-noise: the {len(closed)} closed-set images come from too few identities "
                              f"({most} from one) to all change identity; raise the share")
        rank = rng.permutation(len(lab.names))
        ordered = closed[np.argsort(rank[lab.labels[closed]], kind="stable")]
        labels[ordered] = np.roll(lab.labels[ordered], -most)
    pool = np.concatenate([lab.members(int(c)) for c in candidates[:held]] or [np.array([], np.int64)])
    images[opened] = lab.images[pool[:n_open]]

    relabelled = np.sort(closed)
    section = {
        "share": share, "open": open_share, "tail_images": len(left), "noisy": int(n),
        "outside": [{"identity": lab.names[c], "images": lab.ids(lab.members(int(c)))} for c in outside],
        "relabelled": [{"image": i, "from": lab.names[a], "to": lab.names[b]}
                       for i, a, b in zip(lab.ids(relabelled), lab.labels[relabelled], labels[relabelled])],
        "replaced": [{"image": i, "identity": lab.names[c], "by": lab.source_ids[s], "by_identity": lab.names[b]}
                     for i, c, s, b in zip(lab.ids(opened), lab.labels[opened], lab.images[pool[:n_open]],
                                           lab.labels[pool[:n_open]])],
    }
    keep = ~np.isin(lab.labels, outside)
    return Labelling.make(images[keep], labels[keep], lab.names, lab.source_ids), section
