import pytest

from tailface.train import TrainConfig
from tailface.train.schedule import LRSchedule


def test_warmup_then_multistep():
    cfg = TrainConfig(lr=0.1, schedule="multistep", milestones=[2, 4], gamma=0.1, warmup_epochs=0.5)
    s = LRSchedule(cfg, steps_per_epoch=10)  # 5 warm-up steps
    assert [s.lr(i) for i in range(5)] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert s.lr(5) == pytest.approx(0.1) and s.lr(19) == pytest.approx(0.1)
    assert s.lr(20) == pytest.approx(0.01) and s.lr(39) == pytest.approx(0.01)
    assert s.lr(40) == pytest.approx(0.001) and s.lr(1000) == pytest.approx(0.001)


def test_step_schedule():
    cfg = TrainConfig(lr=1.0, schedule="step", step_size=3, gamma=0.5)
    s = LRSchedule(cfg, steps_per_epoch=4)
    assert [s.lr(4 * e) for e in range(7)] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25])
    assert s.lr(11) == 1.0 and s.lr(12) == 0.5


def test_plateau_lowers_after_patience_and_round_trips():
    cfg = TrainConfig(lr=0.1, schedule="plateau", plateau_patience=1, plateau_factor=0.5)
    s = LRSchedule(cfg, steps_per_epoch=1)
    for loss, expected in [(3.0, 0.1), (2.0, 0.1), (2.0, 0.1), (2.5, 0.05), (2.0, 0.05), (1.0, 0.05)]:
        s.end_epoch(loss)
        assert s.lr(0) == pytest.approx(expected)
    t = LRSchedule(cfg, steps_per_epoch=1)
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == s.state_dict()
