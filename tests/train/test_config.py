import pytest

from tailface.errors import ConfigError
from tailface.train import TrainConfig


def test_from_dict_sets_fields():
    cfg = TrainConfig.from_dict({"epochs": 3, "lr": 0.01, "milestones": [1, 2], "sampler": "class_aware"})
    assert (cfg.epochs, cfg.lr, cfg.milestones) == (3, 0.01, [1, 2])
    assert cfg.sampler == {"name": "class_aware"}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="'learning_rate'"):
        TrainConfig.from_dict({"epochs": 3, "learning_rate": 0.1})


@pytest.mark.parametrize("bad", [{"schedule": "cosine"}, {"epochs": 0}, {"batch_size": 0},
                                 {"milestones": [5, 2]}, {"device": "tpu"}, {"clip_grad_norm": -1},
                                 {"sampler": {"strength": 1}}])
def test_invalid_values_rejected(bad):
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(bad)
