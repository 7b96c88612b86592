
import numpy as np
import pytest
import torch

from tailface.cli.main import main
from tailface.configs import resolve_config
from tailface.data.groups import head_tail_split
from tailface.data.synthetic import synthetic_faceset
from tailface.errors import ConfigError
from tailface.experiment import ExperimentConfig, run_experiment
from tailface.train import load_checkpoint

CONFIGS = resolve_config("baselines/abcd").parent
BASELINES = ["abcd", "ab", "ab_abcd", "resampling", "center_loss", "range_loss", "cosface", "arcface",
             "logit_adjusted", "ldam_drw", "subcenter_arcface", "adaface", "vpl"]
TINY = {"num_identities": 40, "image_size": 16}
QUICK = {"max_steps": 2, "progress": False, "log_every": 1}


def load_experiment(path):
    return ExperimentConfig.load(path)


def tiny(config, eval_=False):
    doc = config.to_dict()
    doc["data"]["options"] = TINY
    if not eval_:
        doc["eval"] = {}
    return doc


def run(doc, out, **train):
    return run_experiment(ExperimentConfig.from_dict(doc).with_train(**train), out, "train")


def test_all_baselines_present_with_one_budget():
    budgets = set()
    for folder in (CONFIGS, CONFIGS / "celeba"):
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        assert names == sorted(BASELINES), folder
        per_folder = set()
        for name in names:
            c = load_experiment(folder / f"{name}.yaml")
            pre = c.stage_train("pretrain").epochs if c.pretrain is not None else 0
            per_folder.add(pre + c.stage_train("train").epochs)
        assert len(per_folder) == 1, (folder, per_folder)
        budgets |= per_folder
    ab_abcd = load_experiment(CONFIGS / "ab_abcd.yaml")
    pre, total = ab_abcd.stage_train("pretrain").epochs, ab_abcd.stage_train("train").epochs
    assert pre / (pre + total) == pytest.approx(0.4)


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_trains_end_to_end(tmp_path, name):
    config = tiny(load_experiment(CONFIGS / f"{name}.yaml"))
    result = run(config, tmp_path, **QUICK)
    ckpt = load_checkpoint(result.final)
    assert ckpt["meta"]["global_step"] == 2
    assert (tmp_path / "train" / "train.csv").is_file() and (tmp_path / "config.yaml").is_file()
    faces = synthetic_faceset(**TINY)
    head, _ = head_tail_split(faces.class_counts())
    expected = len(head) if name == "ab" else faces.num_classes
    assert ckpt["meta"]["num_classes"] == expected == ckpt["head"]["weight"].shape[0]
    if name == "ab_abcd":
        assert load_checkpoint(tmp_path / "pretrain" / "final.pt")["meta"]["num_classes"] == len(head)


def test_ab_abcd_copies_head_rows_and_starts_tail_rows_at_their_mean(tmp_path):
    config = tiny(load_experiment(CONFIGS / "ab_abcd.yaml"))
    config["train"]["lr"] = 1e-12  # one fine-tuning step moves nothing measurable
    config["train"]["weight_decay"] = 0.0
    config["train"]["warmup_epochs"] = 0
    run(config, tmp_path, **{**QUICK, "max_steps": 1})
    pre = load_checkpoint(tmp_path / "pretrain" / "final.pt")
    fine = load_checkpoint(tmp_path / "train" / "final.pt")
    names = fine["meta"]["class_names"]
    rows = [names.index(n) for n in pre["meta"]["class_names"]]
    new_w, old_w = fine["head"]["weight"], pre["head"]["weight"]
    torch.testing.assert_close(new_w[rows], old_w, rtol=0, atol=1e-9)
    tail = np.setdiff1d(np.arange(len(names)), rows)
    assert len(tail)
    torch.testing.assert_close(new_w[tail], old_w.mean(0).expand(len(tail), -1), rtol=0, atol=1e-9)


def test_stages_are_reused(tmp_path, capsys):
    config = tiny(load_experiment(CONFIGS / "abcd.yaml"))
    first = run(config, tmp_path, **QUICK).final
    stamp = first.stat().st_mtime_ns
    run(config, tmp_path, **QUICK)
    assert first.stat().st_mtime_ns == stamp
    assert "tailface train: train: done" in capsys.readouterr().err


def test_cli_trains_and_evaluates(tmp_path):
    import yaml

    config = tiny(load_experiment(CONFIGS / "abcd.yaml"), eval_=True)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--max-steps", "2", "--epochs", "3"]) == 0
    assert (tmp_path / "run" / "eval" / "metrics.json").is_file()
    assert load_checkpoint(tmp_path / "run" / "train" / "final.pt")["meta"]["config"]["epochs"] == 3


def test_epoch_override_keeps_the_ab_abcd_split():
    config = load_experiment(CONFIGS / "ab_abcd.yaml").with_epochs(20)
    assert (config.stage_train("pretrain").epochs, config.stage_train("train").epochs) == (8, 12)
    assert load_experiment(CONFIGS / "abcd.yaml").with_epochs(7).stage_train("train").epochs == 7


@pytest.mark.parametrize("bad, match", [
    ({"trian": {}}, "'trian'"),
    ({"data": {"subset": "CD"}}, "subset"),
    ({"data": {"train": "synthetic", "folder": "x"}}, "'folder'"),
    ({"train": {"epoch": 3}}, "'epoch'"),
    ({"pretrain": {"tail_init": "zeros"}}, "tail_init"),
    ({"eval": {"protocol": ["lfw"]}}, "'protocol'"),
    ({"data": {"groups": {"a": 3, "b": 5, "c": 1}}}, "groups"),
])
def test_bad_experiment_configs(bad, match):
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig.from_dict(bad)


def test_cli_reports_config_errors(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {lr: 0.1, lrr: 2}\n")
    assert main(["train", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "'lrr'" in capsys.readouterr().err
