import numpy as np
import pytest
import torch
from conftest import random_faceset

from tailface.errors import ConfigError, DataError
from tailface.train import TrainConfig, build_head, build_model, fit, load_checkpoint, load_model
from tailface.train.log import read_log

CFG = dict(epochs=2, batch_size=16, lr=0.05, warmup_epochs=0.5, milestones=[1], log_every=1,
           progress=False, seed=3)


def make(seed=0, classes=6):
    torch.manual_seed(seed)
    model = build_model("small", input_size=16, embedding_size=16, width=8, dropout=0.2)
    return model, build_head("softmax", 16, classes)


def weights(path):
    ckpt = torch.load(path, weights_only=False)
    return {**{"m." + k: v for k, v in ckpt["model"].items()}, **{"h." + k: v for k, v in ckpt["head"].items()}}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_cpu_runs_repeat_exactly_and_neither_workers_nor_decoding_into_memory_change_batches(
        tmp_path, monkeypatch, capsys):
    faces = random_faceset(size=20)  # read at 16x16: through the resize
    paths = []
    for name, workers, budget_mib in [("a", 0, "0"), ("b", 0, "0"), ("c", 1, "0"), ("d", 1, "64")]:
        monkeypatch.setenv("TAILFACE_DECODED_MIB", budget_mib)  # 0: read every epoch; 64: decoded once
        model, head = make()
        paths.append(fit(model, head, faces, TrainConfig.from_dict({**CFG, "num_workers": workers}), tmp_path / name))
        decoded = "96 images decoded once at 16x16 into memory" in capsys.readouterr().err
        assert decoded == (budget_mib != "0")
    for other in paths[1:]:
        assert_same_weights(paths[0], other)
    log = read_log(tmp_path / "a" / "train.csv")
    assert [r["step"] for r in log] == list(range(1, 13))  # 96 images // 16 = 6 steps x 2 epochs
    assert all(np.isfinite(r["loss"]) for r in log)


def test_training_changes_weights_and_lowers_loss(tmp_path):
    faces = random_faceset(n=48, classes=3)
    model, head = make(classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig.from_dict({**CFG, "epochs": 15, "lr": 0.1, "milestones": [], "log_every": 3})
    fit(model, head, faces, cfg, tmp_path)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    log = read_log(tmp_path / "train.csv")
    assert np.mean([r["loss"] for r in log[-3:]]) < np.mean([r["loss"] for r in log[:3]])


@pytest.mark.parametrize("stop_at", [8, 6])  # mid-epoch (epoch 1, 2 of 6 batches done) and at an epoch end
def test_resume_gives_exactly_the_uninterrupted_run(tmp_path, stop_at):
    faces = random_faceset()
    model, head = make()
    full = fit(model, head, faces, TrainConfig.from_dict(CFG), tmp_path / "full")
    model, head = make()
    fit(model, head, faces, TrainConfig.from_dict({**CFG, "max_steps": stop_at}), tmp_path / "cut")
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["global_step"] == stop_at
    model, head = make(seed=99)  # resuming must not depend on the fresh model's initialisation
    resumed = fit(model, head, faces, TrainConfig.from_dict(CFG), tmp_path / "cut")
    full_log = read_log(tmp_path / "full" / "train.csv")
    cut_log = read_log(tmp_path / "cut" / "train.csv")
    assert [r["step"] for r in cut_log] == [r["step"] for r in full_log]
    assert cut_log[stop_at]["step"] == stop_at + 1
    assert cut_log[stop_at]["loss"] == full_log[stop_at]["loss"]  # exact, next step after the cut
    assert [r["loss"] for r in cut_log] == [r["loss"] for r in full_log]
    assert_same_weights(full, resumed)


def test_checkpoint_every_steps_and_meta(tmp_path):
    faces = random_faceset()
    model, head = make()
    fit(model, head, faces, TrainConfig.from_dict({**CFG, "checkpoint_every": 4, "max_steps": 4}), tmp_path)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]) == (0, 4, 4)
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python"}
    rebuilt, meta = load_model(tmp_path / "final.pt")
    assert meta["num_classes"] == 6 and meta["image_size"] == [16, 16]
    assert not rebuilt.training
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    assert torch.equal(rebuilt(x), model(x))


def test_crash_during_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    from tailface.train import checkpoint

    faces = random_faceset()
    model, head = make()
    fit(model, head, faces, TrainConfig.from_dict({**CFG, "max_steps": 2}), tmp_path)
    before = load_checkpoint(tmp_path / "last.pt")["global_step"]

    def crashing_save(obj, f):
        f.write(b"partial garbage")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(checkpoint.torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        fit(model, head, faces, TrainConfig.from_dict({**CFG, "max_steps": 5}), tmp_path)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["global_step"] == before
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_and_corrupt_checkpoints_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02not a checkpoint")
    with pytest.raises(DataError, match="bad.pt"):
        load_model(bad)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a tailface checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_resume_refuses_a_different_experiment(tmp_path):
    model, head = make()
    fit(model, head, random_faceset(), TrainConfig.from_dict({**CFG, "max_steps": 1}), tmp_path)
    model, head = make(classes=4)
    with pytest.raises(ConfigError, match="num_classes"):
        fit(model, head, random_faceset(classes=4), TrainConfig.from_dict(CFG), tmp_path)


def test_head_and_data_class_mismatch(tmp_path):
    model, head = make(classes=5)
    with pytest.raises(ConfigError, match="5 classes"):
        fit(model, head, random_faceset(), TrainConfig.from_dict(CFG), tmp_path)


def test_fewer_images_than_a_batch(tmp_path):
    model, head = make()
    with pytest.raises(ConfigError, match="fewer than one batch"):
        fit(model, head, random_faceset(n=12), TrainConfig.from_dict(CFG), tmp_path)


def test_clip_grad_norm_bounds_the_update(tmp_path):
    faces = random_faceset()
    model, head = make()
    before = torch.cat([p.detach().flatten().clone() for p in list(model.parameters()) + list(head.parameters())])
    cfg = TrainConfig.from_dict({**CFG, "max_steps": 1, "momentum": 0.0, "weight_decay": 0.0,
                                 "warmup_epochs": 0, "lr": 1.0, "clip_grad_norm": 1e-3})
    fit(model, head, faces, cfg, tmp_path)
    after = torch.cat([p.detach().flatten() for p in list(model.parameters()) + list(head.parameters())])
    assert 0 < (after - before).norm() <= 1e-3 * (1 + 1e-4)


def test_amp_and_tensorboard_fall_back_cleanly_on_cpu(tmp_path, capsys):
    faces = random_faceset()
    model, head = make()
    fit(model, head, faces, TrainConfig.from_dict({**CFG, "max_steps": 2, "amp": True, "tensorboard": True,
                                                   "device": "cpu"}), tmp_path)
    err = capsys.readouterr().err
    assert "amp is for CUDA only" in err
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert "tensorboard is not installed" in err
    else:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "tensorboard"))
        events.Reload()
        logged = [(e.step, e.value) for e in events.Scalars("train/loss")]
        rows = read_log(tmp_path / "train.csv")
        assert logged == [(int(r["step"]), pytest.approx(float(r["loss"]), rel=1e-6)) for r in rows]
        assert {"train/lr", "train/acc", "train/images_per_s"} <= set(events.Tags()["scalars"])
    assert len(read_log(tmp_path / "train.csv")) == 2
