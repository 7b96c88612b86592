import numpy as np
import pytest
import torch
import torch.nn as nn

from tailface.data import InMemoryFaceSet


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_faceset(n=96, classes=6, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return InMemoryFaceSet(images, np.arange(n) % classes)


class TinyNet(nn.Module):
    """Conv + linear without batch norm: DDP with per-rank slices is exactly the global batch."""

    def __init__(self, input_size=16, embedding_size=8):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * ((input_size + 1) // 2) ** 2, embedding_size)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))
