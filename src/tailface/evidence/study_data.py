"""What ``tailface study`` checks on the data before it trains anything.

- **The test set can answer.** The study holds out ``--holdout`` (default 20%) of the identities
  with at least 2 images and scores every model on them with the ``heldout`` protocol: the first
  image of half of the held-out identities is the gallery, their other images are genuine probes,
  every image of the other half an impostor probe (:func:`tailface.eval.synthetic.gallery_split`).
  It needs at least :data:`MIN_PROBES` of each: fewer genuine probes move DIR@FAR=1% in steps of
  more than 10 points, fewer impostor probes leave its FAR=1% threshold above every impostor.
- **The data has a tail.** The training identities (the rest) must hold head identities (groups A
  and B) and tail identities (C and D): the study compares softmax with and without the tail, and
  aggregate-and-disperse aggregates the tail; without one it would train seven cells before the
  method's first stage stops.

The errors name the data as the user gave it and the command line's flags (``--holdout``), never
the config keys the study writes for itself (``data.holdout``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.groups import group_of_counts
from tailface.data.training_set import heldout_classes, heldout_size, open_data, sample_images, without_heldout
from tailface.errors import DataError
from tailface.eval.synthetic import gallery_split
from tailface.evidence.tables import DirResolution
from tailface.experiment.config import DataConfig

MIN_PROBES = 10  # genuine and impostor probes the test set needs at least
FRACTIONS = (0.3, 0.4, 0.5)  # the larger --holdout an error may suggest


@dataclass(frozen=True)
class TestSet:
    """The held-out identities: how many, their images, the probes behind DIR@FAR=1%, and the
    identities that were eligible (at least ``min_images`` images)."""

    identities: int
    images: int
    genuine: int
    impostors: int
    eligible: int

    @property
    def resolution(self) -> DirResolution:
        return DirResolution(self.genuine, self.impostors)

    def can_answer(self) -> bool:
        return self.identities >= 2 and min(self.genuine, self.impostors) >= MIN_PROBES


@dataclass(frozen=True)
class StudyData:
    test: TestSet
    pool: FaceSet  # the training identities (the data without the test set), as every cell sees them


def test_set(opened: FaceSet, holdout: dict) -> TestSet:
    """The test set ``holdout`` draws from ``opened`` (the opened data, before any hold-out)."""
    n, eligible = heldout_size(opened.class_counts(), holdout)
    if n < 2:
        return TestSet(n, 0, 0, 0, eligible)
    held = np.isin(opened.labels, heldout_classes(opened, holdout))
    labels = np.asarray(opened.labels)[held]
    gallery, probes = gallery_split(labels)
    genuine = int(np.isin(labels[probes], labels[gallery]).sum())
    return TestSet(n, int(held.sum()), genuine, len(probes) - genuine, eligible)


def check_data(shared: DataConfig, spec: str, fraction: float) -> StudyData:
    """The study's data ``shared`` (spec, options, groups, its hold-out), checked before any cell
    trains: a :class:`DataError` in the user's words when the test set cannot answer or the
    training identities have no tail (or no head)."""
    opened = open_data(shared.train, shared.options)
    test = test_set(opened, shared.holdout)
    if not test.can_answer():
        raise DataError(_too_few(spec, opened, shared.holdout, fraction, test))
    pool = sample_images(without_heldout(opened, shared.holdout, spec), shared.sample, spec)
    groups = group_of_counts(pool.class_counts(), shared.groups)
    head, tail = int(np.isin(groups, ("A", "B")).sum()), int(np.isin(groups, ("C", "D")).sum())
    b = shared.groups.b
    if not tail:
        raise DataError(f"{spec}: no tail to study: with the {test.identities} test identities held out, all "
                        f"{head} training identities have >= {b} images (groups A and B); tailface study compares "
                        f"softmax with and without the tail (identities with fewer than {b} images, groups C and D) "
                        f"and aggregate-and-disperse aggregates it. tailface analyze {spec} shows the groups")
    if not head:
        raise DataError(f"{spec}: no head to study: with the {test.identities} test identities held out, all "
                        f"{tail} training identities have fewer than {b} images (groups C and D); the baselines "
                        f"and aggregate-and-disperse's base model train on the head (>= {b} images, groups A and "
                        f"B). tailface analyze {spec} shows the groups")
    return StudyData(test, pool)


def _too_few(spec: str, opened: FaceSet, holdout: dict, fraction: float, test: TestSet) -> str:
    min_images = int(holdout.get("min_images", 2))
    steps = f", one probe = {100 / test.genuine:.0f} points" if test.genuine else ""
    found = (f"{test.identities} identit{'y' if test.identities == 1 else 'ies'}"
             + (f" with {test.genuine} genuine and {test.impostors} impostor probes{steps}" if test.identities >= 2
                else ""))
    larger = [f for f in FRACTIONS if f > fraction and test_set(opened, {**holdout, "fraction": f}).can_answer()]
    way = (f"hold out more with --holdout {larger[0]:g}" if larger else
           f"use data with more identities that have >= {min_images} images")
    return (f"{spec}: too few test identities for tailface study: it holds out {100 * fraction:g}% (--holdout "
            f"{fraction:g}) of the {test.eligible} identities with >= {min_images} images, i.e. {found}; its "
            f"DIR@FAR=1% needs at least {MIN_PROBES} genuine and {MIN_PROBES} impostor probes (at least 2 "
            f"identities); {way}")
