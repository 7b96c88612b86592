"""The training set decoded once into memory (data/decoded.py): the same bytes as reading it every epoch."""

import numpy as np
import pytest

from tailface.data.decoded import DEFAULT_BUDGET_MIB, DecodedFaceSet, decoded_bytes, decoded_in_memory, memory_budget
from tailface.data.faceset import FaceSet, InMemoryFaceSet
from tailface.data.tensors import load_images
from tailface.errors import ConfigError


class MixedSizes(FaceSet):
    """Images of two sizes, neither the network's: every read goes through the bilinear resize."""

    def __init__(self, n=300):
        rng = np.random.default_rng(0)
        self.pictures = [rng.integers(0, 256, (20, 20, 3) if i % 2 else (24, 18, 3), dtype=np.uint8) for i in range(n)]
        self.labels = np.arange(n, dtype=np.int64) % 7
        self.class_names = [f"c{c}" for c in range(7)]
        self.image_ids = [f"{i}.png" for i in range(n)]
        self.source = "<mixed>"
        self.reads = 0

    def _read(self, i):
        self.reads += 1
        return self.pictures[i]


def test_decoded_images_are_the_bytes_of_each_epochs_read():
    faces = MixedSizes()
    decoded = DecodedFaceSet(faces, (16, 12))
    assert faces.reads == len(faces)  # each image read once (CHUNK 256: two calls)
    idx, flips = np.array([5, 0, 299, 42, 5]), np.array([True, False, True, False, False])
    assert np.array_equal(load_images(decoded, idx, (16, 12), flips).numpy(),
                          load_images(faces, idx, (16, 12), flips).numpy())
    assert decoded.images.shape == (300, 16, 12, 3)
    assert (decoded.labels is faces.labels and decoded.class_names is faces.class_names
            and decoded.image_ids is faces.image_ids and decoded.source == "<mixed>")


def test_progress_counts_every_image():
    seen = []
    DecodedFaceSet(MixedSizes(n=260), (8, 8), progress=seen.append)
    assert seen == [256, 4]


def test_budget_decides(monkeypatch):
    faces = InMemoryFaceSet(np.zeros((10, 4, 4, 3), np.uint8), np.arange(10) % 2)
    assert decoded_bytes(faces, (32, 32)) == 10 * 32 * 32 * 3
    monkeypatch.delenv("TAILFACE_DECODED_MIB", raising=False)
    assert memory_budget() == DEFAULT_BUDGET_MIB * 2**20
    assert decoded_in_memory(faces, (32, 32)) is not None
    monkeypatch.setenv("TAILFACE_DECODED_MIB", "0")
    assert decoded_in_memory(faces, (32, 32)) is None
    monkeypatch.setenv("TAILFACE_DECODED_MIB", "1")  # 1 MiB: 341 images of 32x32 fit, not 342
    assert decoded_in_memory(InMemoryFaceSet(np.zeros((341, 1, 1, 3), np.uint8), np.zeros(341)), (32, 32)) is not None
    assert decoded_in_memory(InMemoryFaceSet(np.zeros((342, 1, 1, 3), np.uint8), np.zeros(342)), (32, 32)) is None


@pytest.mark.parametrize("text", ["-1", "lots", "1.5"])
def test_a_bad_budget_is_a_one_line_error(monkeypatch, text):
    monkeypatch.setenv("TAILFACE_DECODED_MIB", text)
    with pytest.raises(ConfigError, match=f"TAILFACE_DECODED_MIB='{text}'.*whole number of MiB"):
        memory_budget()
