"""The state every perturbation reads and returns: a training set as a view over a source set.

Image ``k`` of a :class:`Labelling` is source image ``images[k]`` (its id ``source_ids[images[k]]``)
with class ``labels[k]``, an index into ``names``. Classes are named, never renumbered behind the
caller's back: the manifest and the written list speak in image ids and class names, so that a
perturbed set can be replayed on its source and read against a method's clustering.

Invariants (kept by :meth:`Labelling.make`): every class has at least one image, each source
image appears at most once, and class order is the source classes in source label order followed
by new classes in the order they were created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.groups import GroupThresholds, group_of_counts
from tailface.errors import DataError

FORBIDDEN = ("\t", "\n", "\r")  # a class name or image id holding one could not be written as a list line


@dataclass(frozen=True)
class Labelling:
    images: np.ndarray  # source image index of each image (int64)
    labels: np.ndarray  # class of each image: an index into names (int64)
    names: tuple[str, ...]  # class names, each with >= 1 image
    source_ids: Sequence[str]  # the image ids of the whole source set (shared, never copied)

    @classmethod
    def of_faceset(cls, faceset: FaceSet) -> Labelling:
        """The unperturbed set: every image of ``faceset`` with its own class. DataError when two
        images share an id or two classes a name, or one holds a tab or a line break."""
        ids, names = list(faceset.image_ids), list(faceset.class_names)
        for what, values in (("image id", ids), ("class name", names)):
            if len(set(values)) != len(values):
                raise DataError(f"{faceset.source}: two {what}s are equal; a perturbed set names images by id "
                                f"and identities by name")
            bad = next((v for v in values if any(ch in v for ch in FORBIDDEN)), None)
            if bad is not None:
                raise DataError(f"{faceset.source}: {what} {bad!r} holds a tab or a line break")
        labels = np.asarray(faceset.labels, dtype=np.int64)
        return cls.make(np.arange(len(labels), dtype=np.int64), labels, names, ids)

    @classmethod
    def make(cls, images, labels, names: Sequence[str], source_ids: Sequence[str]) -> Labelling:
        """A Labelling with the classes left without images dropped (order kept)."""
        images, labels = np.asarray(images, dtype=np.int64), np.asarray(labels, dtype=np.int64)
        used = np.bincount(labels, minlength=len(names)) > 0
        new_label = np.cumsum(used) - 1
        return cls(images, new_label[labels], tuple(n for n, u in zip(names, used) if u), source_ids)

    def __len__(self) -> int:
        return len(self.images)

    def counts(self) -> np.ndarray:
        """Images per class, indexed by label."""
        return np.bincount(self.labels, minlength=len(self.names))

    def groups(self, thresholds: GroupThresholds) -> np.ndarray:
        """Group letter of each class (its image count under ``thresholds``)."""
        return group_of_counts(self.counts(), thresholds)

    def ids(self, positions) -> list[str]:
        """The image ids of the images at ``positions``."""
        return [self.source_ids[i] for i in self.images[np.asarray(positions, dtype=np.int64)]]

    def members(self, label: int) -> np.ndarray:
        """Positions of the images of class ``label``, ascending."""
        return np.flatnonzero(self.labels == label)

    def pairs(self) -> list[tuple[str, str]]:
        """``(image id, class name)`` of every image, ordered by class then source index: the
        lines of ``perturbed.lst``, in which classes first appear in label order."""
        order = np.lexsort((self.images, self.labels))
        return [(self.source_ids[self.images[k]], self.names[self.labels[k]]) for k in order]
