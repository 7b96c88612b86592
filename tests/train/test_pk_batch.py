import numpy as np
import pytest

from tailface.data.faceset import InMemoryFaceSet
from tailface.errors import ConfigError
from tailface.train.config import TrainConfig
from tailface.train.trainer import _make_sampler


def _faceset():
    labels = np.repeat(np.arange(8), 4)
    return InMemoryFaceSet(np.zeros((len(labels), 8, 8, 3), np.uint8), labels)


def test_pk_sampler_accepts_batches_of_whole_blocks():
    cfg = TrainConfig.from_dict({"epochs": 1, "batch_size": 16, "lr": 0.1, "sampler": {"name": "pk", "p": 4, "k": 4}})
    assert len(_make_sampler(cfg, _faceset(), 1)) > 0


def test_pk_sampler_rejects_batches_that_cut_blocks():
    cfg = TrainConfig.from_dict({"epochs": 1, "batch_size": 12, "lr": 0.1, "sampler": {"name": "pk", "p": 4, "k": 4}})
    with pytest.raises(ConfigError, match="multiple of sampler p\\*k"):
        _make_sampler(cfg, _faceset(), 1)
    cfg = TrainConfig.from_dict({"epochs": 1, "batch_size": 16, "lr": 0.1, "sampler": {"name": "pk", "p": 2, "k": 8}})
    with pytest.raises(ConfigError):  # 4 processes: slices of 4 would split groups of k = 8
        _make_sampler(cfg, _faceset(), 4)
