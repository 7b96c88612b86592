"""The one dataset abstraction: images with identity labels and class names.

Every source (image folders, list files, CelebA identity files, RecordIO, the built-in synthetic
generator) produces a :class:`FaceSet`. Training, analysis and evaluation only see this interface.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tailface.errors import DataError


class FaceSet:
    """Images with integer identity labels in ``[0, num_classes)``.

    Subclasses implement :meth:`_read` (decode image ``i`` as an ``HxWx3`` uint8 RGB array) and set
    ``labels`` (int64 array, one per image), ``class_names`` (one per class) and ``image_ids``
    (a stable name per image, e.g. its relative path; used to match protocol orders).
    ``source`` names the file or folder the set came from, for error messages.
    """

    labels: np.ndarray
    class_names: list[str]
    image_ids: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        """Images per class, indexed by label."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def read(self, i: int) -> np.ndarray:
        """Decoded image ``i`` as an ``HxWx3`` uint8 RGB array."""
        return self._read(int(i))

    def _read(self, i: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def encoded(self, i: int) -> bytes | None:
        """Image ``i`` as stored, when it is a JPEG or PNG that :meth:`read` decodes unchanged
        (files, records); None when the set computes its images (alignment, synthetic data)."""
        return None

    def subset(self, indices: Sequence[int] | np.ndarray, relabel: bool = True) -> FaceSet:
        """The images at ``indices``; with ``relabel`` classes are renumbered densely (in order of
        their old label) and classes without images are dropped."""
        return SubsetFaceSet(self, np.asarray(indices, dtype=np.int64), relabel=relabel)

    def with_labels(self, labels: np.ndarray, class_names: Sequence[str]) -> FaceSet:
        """Same images, new labels (e.g. tail classes mapped to super classes)."""
        return RelabeledFaceSet(self, labels, class_names)

    def check_labels(self) -> None:
        """Raise :class:`~tailface.errors.DataError` unless labels are ints in range and every
        class has at least one image."""
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or len(labels) != len(self.image_ids):
            raise DataError(f"{self.source}: {len(labels)} labels for {len(self.image_ids)} images")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{self.source}: labels must be integers, got {labels.dtype}")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(
                f"{self.source}: label out of range [0, {self.num_classes}): "
                f"min {labels.min()}, max {labels.max()}"
            )
        empty = np.flatnonzero(self.class_counts() == 0)
        if len(empty):
            names = ", ".join(self.class_names[j] for j in empty[:5])
            raise DataError(f"{self.source}: {len(empty)} classes have no image (e.g. {names})")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(source={self.source!r}, images={len(self)}, "
                f"classes={self.num_classes})")


class InMemoryFaceSet(FaceSet):
    """Images held in one ``NxHxWx3`` uint8 array (synthetic data, tests)."""

    def __init__(self, images: np.ndarray, labels, class_names=None, image_ids=None,
                 source: str = "<memory>"):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be an NxHxWx3 uint8 array, got {images.shape} {images.dtype}")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        n_cls = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.class_names = list(class_names) if class_names is not None else [str(c) for c in range(n_cls)]
        self.image_ids = list(image_ids) if image_ids is not None else [f"{i:07d}" for i in range(len(images))]
        self.source = source
        self.check_labels()

    def _read(self, i: int) -> np.ndarray:
        return self.images[i]


class SubsetFaceSet(FaceSet):
    def __init__(self, parent: FaceSet, indices: np.ndarray, relabel: bool = True):
        self.parent = parent
        self.indices = indices
        self.source = parent.source
        old = np.asarray(parent.labels)[indices]
        if relabel:
            kept, new = np.unique(old, return_inverse=True)
            self.labels = new.astype(np.int64)
            self.class_names = [parent.class_names[c] for c in kept]
            self.parent_classes = kept  # new label -> parent label
        else:
            self.labels = old.astype(np.int64)
            self.class_names = list(parent.class_names)
            self.parent_classes = np.arange(parent.num_classes)
        self.image_ids = [parent.image_ids[i] for i in indices]

    def _read(self, i: int) -> np.ndarray:
        return self.parent.read(self.indices[i])

    def encoded(self, i: int) -> bytes | None:
        return self.parent.encoded(int(self.indices[i]))


class RelabeledFaceSet(FaceSet):
    def __init__(self, parent: FaceSet, labels, class_names):
        self.parent = parent
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = list(class_names)
        self.image_ids = parent.image_ids
        self.source = parent.source
        if len(self.labels) != len(parent):
            raise ValueError(f"{len(self.labels)} labels for {len(parent)} images")
        self.check_labels()

    def _read(self, i: int) -> np.ndarray:
        return self.parent.read(i)

    def encoded(self, i: int) -> bytes | None:
        return self.parent.encoded(i)
