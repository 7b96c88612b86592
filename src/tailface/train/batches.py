"""Epoch order -> global batches -> this rank's slice, loaded as uint8 tensors.

The sampler gives the global order of image indices for an epoch; it is cut into global batches of
``batch_size`` (the incomplete last batch is dropped) and, under DDP, each global batch is split into
``world_size`` contiguous slices. Horizontal flips are decided per global position from
``(seed, epoch, batch)``, so they do not depend on the number of ranks, on DataLoader workers, or
on whether the run was resumed mid-epoch.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from tailface.data.faceset import FaceSet


class RandomOrder:
    """The default sampler: a fresh permutation of all images every epoch."""

    def __init__(self, n: int, seed: int = 0):
        self.n = int(n)
        self.seed = int(seed)

    def indices(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)

    def __len__(self) -> int:
        return self.n


def epoch_batches(sampler, epoch: int, batch_size: int) -> np.ndarray:
    """``num_batches x batch_size`` global batches of one epoch (last partial batch dropped)."""
    order = np.asarray(sampler.indices(epoch), dtype=np.int64)
    n = len(order) // batch_size
    return order[: n * batch_size].reshape(n, batch_size)


def num_batches(sampler, batch_size: int) -> int:
    return len(sampler) // batch_size


def load_images(faceset: FaceSet, indices, size: tuple[int, int], flips=None) -> torch.Tensor:
    """uint8 ``Bx3xHxW`` tensor of the images at ``indices``, resized to ``size`` (h, w) when they
    differ, mirrored where ``flips`` is true."""
    h, w = size
    out = np.empty((len(indices), h, w, 3), dtype=np.uint8)
    for j, i in enumerate(indices):
        image = faceset.read(int(i))
        if image.shape[0] != h or image.shape[1] != w:
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
        out[j] = image[:, ::-1] if flips is not None and flips[j] else image
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] ((x - 127.5) / 128, as ``to_tensor``)."""
    return (batch.float() - 127.5) / 128.0


class EpochBatchDataset(torch.utils.data.Dataset):
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

    def __getitem__(self, b: int):
        flips = None
        if self.flip:
            flips = np.random.default_rng([self.seed, self.epoch, int(b)]).random(self.batches.shape[1]) < 0.5
            flips = flips[self.cols]
        idx = self.batches[b, self.cols]
        labels = torch.from_numpy(np.asarray(self.faceset.labels)[idx].astype(np.int64))
        return load_images(self.faceset, idx, self.image_size, flips), labels
