"""FaceSet -> torch tensors, for training and for feature extraction: the one image-to-tensor path.

Decoding is the FaceSet's ``read(i)`` (``HxWx3`` uint8 RGB; an image that cannot be read stops with
its file, its problem and the ways out: :func:`tailface.data.decode_check.ways_out`); this module
resizes (bilinear, only when the size differs), mirrors, and stacks into uint8 ``Bx3xHxW`` batches. :func:`normalize`
turns a batch into network input on the device: tailface's preprocessing
(:data:`tailface.data.preprocess.TAILFACE_PREPROCESSING`, ``(x - 127.5) / 128`` RGB), whose one
formula for torch and NumPy lives in :mod:`tailface.data.preprocess`. Both datasets yield whole
batches (``DataLoader(batch_size=None)``), so the batch composition is decided here and not by the
loader.

- :class:`TrainBatches`: item ``b`` is this rank's slice of global batch ``b`` of an epoch. The
  epoch's order comes from a sampler (``tailface.data.samplers``), cut into global batches by
  :func:`epoch_batches` (the incomplete last batch dropped); under DDP each global batch is split
  into ``world_size`` contiguous slices. Flips are drawn per global position from
  ``(seed, epoch, batch)``, so they do not depend on the number of ranks, on DataLoader workers,
  or on whether the run was resumed mid-epoch.
- :class:`EvalBatches`: consecutive chunks of the FaceSet in its order, no flips (flip fusion is
  the feature extractor's business: :func:`tailface.data.preprocess.flip_fusion`).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from tailface.data.decode_check import ways_out
from tailface.data.faceset import FaceSet
from tailface.data.preprocess import TAILFACE_PREPROCESSING
from tailface.errors import DataError


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size`` = (height, width), bilinear; the same array when it already is."""
    h, w = size
    if image.shape[0] == h and image.shape[1] == w:
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def load_images(faceset: FaceSet, indices, size: tuple[int, int], flips=None) -> torch.Tensor:
    """uint8 ``Bx3xHxW`` tensor of the images at ``indices``, resized to ``size`` (h, w), mirrored
    where ``flips`` is true."""
    h, w = size
    out = np.empty((len(indices), h, w, 3), dtype=np.uint8)
    for j, i in enumerate(indices):
        image = resized(_read(faceset, int(i)), size)
        out[j] = image[:, ::-1] if flips is not None and flips[j] else image
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def _read(faceset: FaceSet, i: int) -> np.ndarray:
    """``faceset.read(i)``; a DataError (the file and its problem) extended with the ways out."""
    try:
        return faceset.read(i)
    except DataError as exc:
        raise DataError(f"{exc}; {ways_out(str(faceset.source))}") from None


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 ``Bx3xHxW`` RGB images -> float32 ``(x - 127.5) / 128`` on their device:
    ``TAILFACE_PREPROCESSING.to_input`` (the training batches' and ``extract_features``' input)."""
    return TAILFACE_PREPROCESSING.to_input(batch)


def epoch_batches(sampler, epoch: int, batch_size: int) -> np.ndarray:
    """``num_batches x batch_size`` global batches of one epoch (last partial batch dropped)."""
    order = np.asarray(sampler.indices(epoch), dtype=np.int64)
    n = len(order) // batch_size
    return order[: n * batch_size].reshape(n, batch_size)


class TrainBatches(torch.utils.data.Dataset):
    """Item ``b`` = this rank's slice of global batch ``b`` of ``epoch``: (uint8 images, labels)."""

    def __init__(self, faceset: FaceSet, batches: np.ndarray, epoch: int, image_size: tuple[int, int],
                 seed: int, flip: bool, rank: int = 0, world_size: int = 1):
        per_rank = batches.shape[1] // world_size
        self.faceset = faceset
        self.batches = batches
        self.epoch = epoch
        self.image_size = image_size
        self.seed = seed
        self.flip = flip
        self.cols = slice(rank * per_rank, (rank + 1) * per_rank)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        flips: np.ndarray | None = None
        if self.flip:
            flips = np.random.default_rng([self.seed, self.epoch, int(b)]).random(int(self.batches.shape[1])) < 0.5
            flips = flips[self.cols]
        idx = self.batches[b, self.cols]
        labels = torch.from_numpy(np.asarray(self.faceset.labels)[idx].astype(np.int64))
        return load_images(self.faceset, idx, self.image_size, flips), labels


class EvalBatches(torch.utils.data.Dataset):
    """Item ``b`` = uint8 images ``b * batch_size ..`` of ``faceset``, in its order."""

    def __init__(self, faceset: FaceSet, image_size: tuple[int, int], batch_size: int):
        self.faceset, self.image_size, self.batch_size = faceset, image_size, batch_size

    def __len__(self) -> int:
        return -(-len(self.faceset) // self.batch_size)

    def __getitem__(self, b: int) -> torch.Tensor:
        start = b * self.batch_size
        stop = min(start + self.batch_size, len(self.faceset))
        return load_images(self.faceset, range(start, stop), self.image_size)
