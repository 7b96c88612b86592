"""A training set decoded once into memory at the network's input size, when it fits.

Training reads every image once an epoch, and reading one is decoding its JPEG and resizing it
(:func:`tailface.data.tensors.load_images`): on the cpu profile (112x112 records, a network at
32x32) that is about a third of a cell's CPU, repeated every epoch. :func:`decoded_in_memory`
runs that same read-and-resize once per image and keeps the results in one ``N x H x W x 3``
uint8 array; the batches are then cut from memory. The bytes are the ones the per-epoch path
produces, so training gives the same weights bit for bit (tests/data/test_decoded.py).

It is used when the array fits :func:`memory_budget` (default 1 GiB a process: the CelebA
training set at 112x112 is 0.6 GiB, at 32x32 50 MiB; an MS-Celeb-scale set is read from disk
every epoch as before). ``TAILFACE_DECODED_MIB`` sets the budget in MiB; 0 turns it off.
"""

from __future__ import annotations

import os

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.tensors import load_images
from tailface.errors import ConfigError

DEFAULT_BUDGET_MIB = 1024
BUDGET_VARIABLE = "TAILFACE_DECODED_MIB"
CHUNK = 256  # images decoded per call of load_images


def memory_budget() -> int:
    """Bytes a decoded training set may take: ``$TAILFACE_DECODED_MIB`` MiB, else 1 GiB."""
    text = os.environ.get(BUDGET_VARIABLE)
    if text is None:
        return DEFAULT_BUDGET_MIB * 2**20
    try:
        mib = int(text)
    except ValueError:
        mib = -1
    if mib < 0:
        raise ConfigError(f"{BUDGET_VARIABLE}={text!r}: must be a whole number of MiB (0 turns decoding into "
                          "memory off)")
    return mib * 2**20


def decoded_bytes(faceset: FaceSet, size: tuple[int, int]) -> int:
    """The size of ``faceset`` decoded at ``size`` = (height, width), in bytes."""
    return len(faceset) * size[0] * size[1] * 3


class DecodedFaceSet(FaceSet):
    """``parent`` with every image already read and resized to ``size``: the same labels, class
    names, image ids and source; :meth:`read` returns the kept array."""

    def __init__(self, parent: FaceSet, size: tuple[int, int], progress=None):
        self.parent, self.size = parent, size
        self.labels, self.class_names = parent.labels, parent.class_names
        self.image_ids, self.source = parent.image_ids, parent.source
        self.images = np.empty((len(parent), size[0], size[1], 3), dtype=np.uint8)
        for start in range(0, len(parent), CHUNK):
            stop = min(start + CHUNK, len(parent))
            self.images[start:stop] = load_images(parent, range(start, stop), size).permute(0, 2, 3, 1).numpy()
            if progress is not None:
                progress(stop - start)

    def _read(self, i: int) -> np.ndarray:
        return self.images[i]


def decoded_in_memory(faceset: FaceSet, size: tuple[int, int], progress=None) -> DecodedFaceSet | None:
    """``faceset`` decoded at ``size`` (:class:`DecodedFaceSet`) when it fits :func:`memory_budget`,
    else None (the caller reads from ``faceset`` every epoch)."""
    budget = memory_budget()
    if budget == 0 or decoded_bytes(faceset, size) > budget:
        return None
    return DecodedFaceSet(faceset, size, progress)
