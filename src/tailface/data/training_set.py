"""The training set, drawn in one place: ``tailface train``/``run`` (a config's ``data:`` block,
:class:`~tailface.experiment.config.DataConfig`) and ``tailface subset`` both call these functions,
so the same numbers and seeds select the same images.

The draw is four steps, each on the result of the one before (each renumbers the classes densely
in order of their old label; a step that keeps everything returns its input unchanged):

1. **open** (:func:`open_data`): the dataset spec with its options; every class must have an image.
   With ``skip_bad: true`` the missing and empty files are left out when the source opens and the
   images that do not decode after one full decode pass (:mod:`tailface.data.decode_check`); the
   pool's ``skipped`` lists them all (``OUT/skipped.txt``).
2. **hold-out** (``data.holdout``; ``subset --holdout``): ``fraction`` of the identities with at
   least ``min_images`` images are the test identities of the ``heldout`` protocol
   (:func:`open_heldout` returns them) and leave training.
3. **sample** (``data.sample``; ``subset --uniform/--long-tail``): ``identities`` identities and
   ``images`` images, with (nearly) equal or power-law class sizes (:mod:`tailface.data.subsets`).
   Steps 1-3 give the **pool** (:func:`open_pool`): what an experiment's stages draw from; the
   long-tail groups are those of the pool's class sizes.
4. **groups** (``data.subset`` + ``data.tail_share``; ``subset --groups/--share/--identities``):
   the classes of the groups in ``subset``, plus a share (or a number) of the classes of others
   (:func:`select_groups`). A baseline's pretrain stage and the method select their groups from
   the pool too.

Random streams: one numpy generator per purpose, made only here (:func:`holdout_rng`,
:func:`sample_rng`, :func:`group_rng`), never shared, so that one draw does not depend on whether
another step ran or on the other groups::

    purpose              generator                             draw
    hold-out identities  default_rng([holdout.seed, 7])        choice(eligible, round(fraction * len(eligible)),
                                                               replace=False), sorted; eligible: the classes
                                                               with >= min_images images
    sample               default_rng(sample.seed)              uniform: the identities given an extra image, the
                                                               others, then each one's images by ascending class;
                                                               long-tail: one identity per rank, then the images
                                                               (tailface.data.subsets)
    classes of group G   default_rng([subset_seed, ord(G)])    permutation(classes of G)[:n], n =
                                                               round(tail_share[G] * len) or subset --identities G=n

``tailface subset``'s ``--seed`` is both ``sample.seed`` and ``subset_seed``; ``--holdout-seed``
is ``holdout.seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from tailface.data.decode_check import without_unreadable
from tailface.data.faceset import FaceSet
from tailface.data.groups import GROUPS, GroupThresholds, group_of_counts
from tailface.data.open import open_faceset
from tailface.data.subsets import long_tail_subset, uniform_subset
from tailface.errors import ConfigError

if TYPE_CHECKING:  # the experiment layer imports the data layer, not the other way round
    from tailface.experiment.config import DataConfig

HOLDOUT_STREAM = 7  # the second word of the hold-out generator's seed
SAMPLE_KINDS = ("uniform", "long-tail")


# -- the random streams ---------------------------------------------------------------------------

def holdout_rng(seed: int) -> np.random.Generator:
    """The generator of the held-out identities: ``default_rng([seed, 7])``."""
    return np.random.default_rng([int(seed), HOLDOUT_STREAM])


def sample_rng(seed: int) -> np.random.Generator:
    """The generator of a uniform / long-tail sample: ``default_rng(seed)``."""
    return np.random.default_rng(int(seed))


def group_rng(seed: int, group: str) -> np.random.Generator:
    """The generator of the classes drawn from ``group``: ``default_rng([seed, ord(group)])``."""
    return np.random.default_rng([int(seed), ord(group)])


# -- the steps ------------------------------------------------------------------------------------

def open_data(spec: str, options: Mapping | None = None) -> FaceSet:
    """Step 1: ``spec`` opened with ``options``; DataError unless every class has an image. With
    ``skip_bad``, the images that do not decode are left out too (one decode pass, kept for the
    process: :func:`tailface.data.decode_check.without_unreadable`)."""
    options = dict(options or {})
    faceset = open_faceset(spec, **options)
    if options.get("skip_bad"):
        faceset = without_unreadable(faceset)
    faceset.check_labels()
    return faceset


def _keep_skipped(faceset: FaceSet, opened: FaceSet) -> FaceSet:
    """``faceset`` (drawn from ``opened``) carrying ``opened.skipped``: the files left out when the
    data opened, which the runner lists in ``OUT/skipped.txt``."""
    skipped = getattr(opened, "skipped", None)
    if skipped and faceset is not opened:
        faceset.skipped = list(skipped)  # type: ignore[attr-defined]
    return faceset


def heldout_size(counts: np.ndarray, holdout: Mapping) -> tuple[int, int]:
    """``(held out, eligible)``: how many identities ``holdout`` keeps out of training, of the
    ``eligible`` ones (at least ``min_images`` images, default 2): ``round(fraction * eligible)``."""
    eligible = int((np.asarray(counts) >= int(holdout.get("min_images", 2))).sum())
    return int(round(float(holdout.get("fraction", 0.2)) * eligible)), eligible


def heldout_classes(faceset: FaceSet, holdout: Mapping, where: str = "data") -> np.ndarray:
    """The held-out identities (sorted class ids): ``fraction`` (default 0.2) of those with at
    least ``min_images`` (default 2) images, drawn by ``seed`` (default 0)."""
    min_images = int(holdout.get("min_images", 2))
    eligible = np.flatnonzero(faceset.class_counts() >= min_images)
    n, _ = heldout_size(faceset.class_counts(), holdout)
    if n < 2:
        raise ConfigError(f"{where}: data.holdout leaves {n} test identities; it needs at least 2 "
                          f"(identities with >= {min_images} images: {len(eligible)})")
    return np.sort(holdout_rng(holdout.get("seed", 0)).choice(eligible, n, replace=False))


def without_heldout(faceset: FaceSet, holdout: Mapping, where: str = "data") -> FaceSet:
    """Step 2: ``faceset`` without the held-out identities (itself when ``holdout`` is empty)."""
    if not holdout:
        return faceset
    held = heldout_classes(faceset, holdout, where)
    return faceset.subset(np.flatnonzero(~np.isin(faceset.labels, held)), relabel=True)


def sample_images(faceset: FaceSet, sample: Mapping, where: str = "data") -> FaceSet:
    """Step 3: ``{kind: uniform | long-tail, identities: N, images: M, seed: s}`` drawn from
    ``faceset`` (itself when ``sample`` is empty); ``max_per_class`` bounds a long-tail class
    (``subset --max-per-class``; not a config key)."""
    if not sample:
        return faceset
    kind = sample.get("kind")
    if kind not in SAMPLE_KINDS:
        raise ConfigError(f"{where}: data.sample.kind must be uniform or long-tail, got {kind!r}")
    rng = sample_rng(sample.get("seed", 0))
    try:
        if kind == "uniform":
            indices = uniform_subset(faceset.labels, sample["identities"], sample["images"], rng)
        else:
            indices = long_tail_subset(faceset.labels, sample["identities"], sample["images"], rng,
                                       max_per_class=sample.get("max_per_class"))
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"data.sample ({where}): {exc}") from None
    return faceset.subset(indices, relabel=True)


def group_classes(counts: np.ndarray, subset: str, thresholds: GroupThresholds,
                  share: Mapping[str, float] | None = None, seed: int = 0,
                  identities: Mapping[str, int] | None = None) -> np.ndarray:
    """The classes (sorted ids) of the groups in ``subset`` (groups of ``counts``, the class
    sizes), where a group in ``identities`` keeps only that many of its classes, plus for each
    group in ``share`` (not in ``subset``) that fraction of its classes, rounded. A group's
    classes are drawn as ``permutation(classes of G)[:n]`` with :func:`group_rng` (``seed``, G)."""
    share = {g: v for g, v in (share or {}).items() if v > 0}
    subset = _check_groups(subset, share, identities)
    identities = dict(identities or {})
    groups = group_of_counts(counts, thresholds)
    keep = np.isin(groups, [g for g in subset if g not in identities])
    wanted = {g: int(round(fraction * int((groups == g).sum()))) for g, fraction in share.items()}
    for g, n in identities.items():
        members = int((groups == g).sum())
        if not 0 <= n <= members:
            raise ConfigError(f"group {g} has {members} identities, {n} requested")
        wanted[g] = n
    for g, n in sorted(wanted.items()):  # each group its own stream: the order does not matter
        keep[group_rng(seed, g).permutation(np.flatnonzero(groups == g))[:n]] = True
    return np.flatnonzero(keep)


def _check_groups(subset: str, share: Mapping | None, identities: Mapping | None) -> str:
    """``subset`` upper-cased; ConfigError for letters that are not groups, a share of a kept
    group, or a number of identities of a group not kept."""
    subset = subset.upper()
    share, identities = dict(share or {}), dict(identities or {})
    if not subset or set(subset) - set(GROUPS) or set(share) - set(GROUPS):
        raise ConfigError(f"groups must be letters among {''.join(GROUPS)}; got groups {subset!r}"
                          + (f", a share of {''.join(sorted(share))}" if share else ""))
    if set(identities) - set(subset):
        extra = "".join(sorted(set(identities) - set(subset)))
        raise ConfigError(f"a number of identities is given for groups {extra}, which are not among the groups "
                          f"kept ({subset})")
    if set(share) & set(subset):
        both = "".join(sorted(set(share) & set(subset)))
        raise ConfigError(f"a share is given for groups {both}, which are kept whole ({subset}); a share is for "
                          "the groups not kept")
    return subset


def select_groups(faceset: FaceSet, subset: str, thresholds: GroupThresholds,
                  share: Mapping[str, float] | None = None, seed: int = 0,
                  identities: Mapping[str, int] | None = None) -> FaceSet:
    """Step 4: the images of :func:`group_classes` (``faceset`` itself when that is every group
    whole), relabelled densely in ascending class id, names kept."""
    share = {g: v for g, v in (share or {}).items() if v > 0}
    if set(_check_groups(subset, share, identities)) >= set(GROUPS) and not identities and not share:
        return faceset  # every group whole (a share then has no group left to draw from)
    classes = group_classes(faceset.class_counts(), subset, thresholds, share, seed, identities)
    if not len(classes):
        raise ConfigError(f"{faceset.source}: no classes in groups {subset} with {thresholds}")
    return faceset.subset(np.flatnonzero(np.isin(faceset.labels, classes)), relabel=True)


# -- a config's data block ------------------------------------------------------------------------

def open_pool(data: DataConfig) -> FaceSet:
    """Steps 1-3 for a ``data:`` block: the data without the held-out identities, then the sample;
    the set whose class sizes define the groups, from which every stage selects its classes."""
    opened = open_data(data.train, data.options)
    faceset = without_heldout(opened, data.holdout, data.train)
    return _keep_skipped(sample_images(faceset, data.sample, data.train), opened)


def training_set(pool: FaceSet, data: DataConfig) -> FaceSet:
    """Step 4 for a ``data:`` block: what a baseline's train stage trains on, from the pool."""
    return select_groups(pool, data.subset, data.groups, data.tail_share, data.subset_seed)


def open_training_set(data: DataConfig) -> FaceSet:
    """All four steps: the images a ``data:`` block trains on (a baseline's train stage)."""
    return training_set(open_pool(data), data)


def open_heldout(data: DataConfig) -> FaceSet:
    """The held-out test identities of ``data.holdout`` (all their images), labels renumbered."""
    if not data.holdout:
        raise ConfigError("the heldout protocol needs data.holdout (the identities kept out of training)")
    faceset = open_data(data.train, data.options)
    held = heldout_classes(faceset, data.holdout, data.train)
    return faceset.subset(np.flatnonzero(np.isin(faceset.labels, held)), relabel=True)
