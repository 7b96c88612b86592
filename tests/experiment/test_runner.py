"""The one runner: config validation up front, shipped configs, stage skipping, resume determinism."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import torch
import yaml

from tailface.cli.main import main
from tailface.configs import resolve_config, shipped_configs
from tailface.errors import ConfigError
from tailface.experiment import ExperimentConfig, run_experiment
from tailface.experiment.stages import Stage, run_stages

TINY = {
    "name": "tiny-method",
    "data": {"train": "synthetic", "options": {"num_identities": 60, "image_size": 16, "max_images": 30}},
    "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
    "head": {"name": "softmax"},
    "train": {"epochs": 1, "batch_size": 16, "max_steps": 3, "progress": False, "seed": 0},
    "method": {"budget": 2, "evaluate": []},
    "eval": {},
}


def weights(path):
    ckpt = torch.load(path, weights_only=False)
    return {**{"m." + k: v for k, v in ckpt["model"].items()}, **{"h." + k: v for k, v in ckpt["head"].items()}}


def test_method_resumed_after_any_stage_ends_with_the_same_weights(tmp_path):
    torch.set_num_threads(1)
    full = tmp_path / "full"
    run_experiment(ExperimentConfig.from_dict(TINY), full)
    reference = weights(full / "dispersion" / "final.pt")
    for kept in (["base"], ["base", "features", "cluster"], ["base", "features", "cluster", "prototype"]):
        out = tmp_path / "-".join(kept)
        out.mkdir()
        for stage in kept:
            shutil.copytree(full / stage, out / stage)
        run_experiment(ExperimentConfig.from_dict(TINY), out)  # a new process would do the same
        resumed = weights(out / "dispersion" / "final.pt")
        assert resumed.keys() == reference.keys()
        assert all(torch.equal(resumed[k], reference[k]) for k in reference), kept


@pytest.mark.parametrize("bad, match", [
    ({"method": {"dispersion_lr": "fast"}}, "method.dispersion_lr must be a positive number"),
    ({"method": {"num_super": 0}}, "num_super"),
    ({"method": {"kmeans_iters": "many"}}, "kmeans_iters"),
    ({"method": {"base_train": {"lr": "abc"}}}, r"method.base_train: lr must be a number, got 'abc'"),
    ({"train": {"lr": "abc"}}, "train: lr must be a number, got 'abc'"),
    ({"model": {"name": "smal"}}, "unknown model 'smal'; known: .*small"),
    ({"head": {"name": "arcfce"}}, "unknown head 'arcfce'"),
    ({"head": {"name": "center_loss"}, "method": {}}, "the method supports"),
    ({"pretrain": {}, "method": {}}, "pretrain is a baseline block"),
    ({"eval": {"protocols": ["blufr", "imagenet"]}}, "imagenet"),
    ({"name": 3}, "name must be a string"),
])
def test_every_block_is_checked_when_the_config_is_read(bad, match):
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig.from_dict(bad)


def test_config_round_trips_through_config_yaml(tmp_path):
    for name, path in shipped_configs().items():
        cfg = ExperimentConfig.load(path)
        again = ExperimentConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())), str(path))
        assert again == cfg, name


def test_shipped_configs_resolve_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    names = shipped_configs()
    assert {"method/synthetic", "method/celeba", "baselines/abcd", "baselines/celeba/abcd"} <= set(names)
    for text in ("method/celeba", "configs/method/celeba.yaml", "method/celeba.yaml"):
        assert resolve_config(text) == names["method/celeba"]
    assert resolve_config(None) == names["method/synthetic"]
    with pytest.raises(ConfigError, match="nowhere.yaml: config file not found"):
        resolve_config("nowhere.yaml")
    assert main(["run", "--list-configs"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in names)
    assert "Aggregate-and-disperse on the built-in synthetic" in listing


def test_train_and_run_are_one_runner(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert main(["train", str(path), "--out", str(tmp_path / "a"), "--max-steps", "2"]) == 0
    assert main(["run", str(path), "--out", str(tmp_path / "b"), "--max-steps", "2"]) == 0
    assert weights(tmp_path / "a" / "dispersion" / "final.pt").keys() == weights(
        tmp_path / "b" / "dispersion" / "final.pt").keys()
    saved = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert saved["name"] == "tiny-method" and saved["train"]["max_steps"] == 2


def test_derived_stages_are_redone_when_an_input_is_newer(tmp_path, capsys):
    calls = []
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"

    def make():
        calls.append("made")
        out.write_text(src.read_text())

    src.write_text("1")
    stage = Stage("summary", out, make, (src,), derived=True)
    kept = Stage("trained", src, lambda: calls.append("never"))
    for _ in range(2):
        run_stages([kept, stage])
    assert calls == ["made"]
    time.sleep(0.01)
    src.write_text("2")
    os.utime(src, ns=(out.stat().st_mtime_ns + 10**6,) * 2)
    run_stages([kept, stage])
    assert calls == ["made", "made"] and out.read_text() == "2"
    assert "tailface run: trained: done" in capsys.readouterr().err


def test_method_base_can_be_an_onnx_model(tmp_path):
    """``method.base: model.onnx``: Step I clusters with features of an external model file."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'tailface[onnx]')")
    import numpy as np

    from tailface.deploy.onnx_export import export_onnx
    from tailface.eval.features import load_features

    torch.set_num_threads(1)
    full = tmp_path / "full"
    run_experiment(ExperimentConfig.from_dict(TINY), full)
    onnx_path = tmp_path / "base.onnx"
    export_onnx(full / "base" / "final.pt", onnx_path)
    doc = {**TINY, "method": {**TINY["method"], "base": str(onnx_path)}}
    out = tmp_path / "onnx-base"
    run_experiment(ExperimentConfig.from_dict(doc), out)
    assert not (out / "base").exists()  # no base stage: the file is the base model
    ours, theirs = load_features(out / "features" / "tail.npz"), load_features(full / "features" / "tail.npz")
    assert ours["image_ids"] == theirs["image_ids"]
    np.testing.assert_allclose(ours["features"], theirs["features"], rtol=1e-4, atol=1e-4)
    assert (out / "dispersion" / "final.pt").is_file()
