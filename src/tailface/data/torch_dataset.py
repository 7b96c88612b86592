"""FaceSet -> torch tensors for training and feature extraction."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from tailface.data.faceset import FaceSet


def to_tensor(image: np.ndarray, size: int | tuple[int, int]) -> torch.Tensor:
    """uint8 HxWx3 -> float 3xHxW in [-1, 1] ((x - 127.5) / 128, the InsightFace convention),
    resized to ``size`` (int: square; tuple: (height, width)) when it differs."""
    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[0] != h or image.shape[1] != w:
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    if not image.flags.writeable or not image.flags.c_contiguous:
        image = np.array(image)  # torch.from_numpy needs a writable, contiguous buffer
    t = torch.from_numpy(image).permute(2, 0, 1).float()
    return (t - 127.5) / 128.0


class TorchFaceDataset(torch.utils.data.Dataset):
    """Yields ``(image tensor 3xHxW, label)``; random horizontal flip when ``train``."""

    def __init__(self, faceset: FaceSet, image_size: int | tuple[int, int] = 112, train: bool = True):
        self.faceset = faceset
        self.image_size = image_size
        self.train = train

    def __len__(self) -> int:
        return len(self.faceset)

    def __getitem__(self, i: int):
        image = self.faceset.read(i)
        if self.train and torch.rand(()) < 0.5:
            image = image[:, ::-1]
        return to_tensor(image, self.image_size), int(self.faceset.labels[i])
