"""The pipeline end to end on a tiny synthetic set; a second run skips every completed stage."""

import json

import numpy as np
import pytest
import torch

from tailface.cli.main import main as cli_main
from tailface.configs import shipped_configs
from tailface.errors import ConfigError
from tailface.experiment import ExperimentConfig, run_experiment
from tailface.heads.spec import HeadSpec
from tailface.method.aggregate import load_aggregation
from tailface.method.config import MethodConfig
from tailface.method.partition import Partition
from tailface.train.checkpoint import load_checkpoint

TINY = {
    "data": {"train": "synthetic", "options": {"num_identities": 60, "image_size": 16, "max_images": 30}},
    "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
    "head": {"name": "softmax"},
    "train": {"epochs": 1, "batch_size": 16, "max_steps": 2, "progress": False, "seed": 0},
    "method": {"budget": 2, "abcd_baseline": True, "evaluate": ["ours"]},
    "eval": {"protocols": ["synthetic"]},
}


def run_pipeline(doc, out):
    return run_experiment(ExperimentConfig.from_dict(doc), out).report


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    report = run_pipeline(TINY, out)
    return out, report


def test_pipeline_outputs(tiny_run):
    out, report = tiny_run
    for path in ("base/final.pt", "features/tail.npz", "cluster/super_classes.json", "cluster/sizes.png",
                 "prototype/final.pt", "dispersion/final.pt", "abcd/final.pt", "eval/ours/metrics.json",
                 "norms/norms.md", "norms/norms.png"):
        assert (out / path).is_file(), path
    text = report.read_text()
    for section in ("## Data groups", "## Step I: clustering", "## Training", "## Evaluation", "row norms"):
        assert section in text
    from tailface.data.synthetic import synthetic_faceset

    faceset = synthetic_faceset(**TINY["data"]["options"])
    part = Partition.from_faceset(faceset)
    agg = load_aggregation(out / "cluster" / "super_classes.json", part)
    proto = load_checkpoint(out / "prototype" / "final.pt")
    assert proto["head"]["weight"].shape[0] == part.num_head + agg.num_super
    disp = load_checkpoint(out / "dispersion" / "final.pt")
    assert disp["head"]["weight"].shape[0] == part.num_head + part.num_tail
    np.testing.assert_array_equal(disp["head"]["super_of_tail"].numpy(), agg.super_of_tail)
    norms = json.loads((out / "norms" / "norms.json").read_text())
    assert set(norms) == {"ABCD softmax", "ours (dispersion)"}


def test_second_run_skips_completed_stages(tiny_run, capsys):
    out, _ = tiny_run
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("final.pt")}
    stamps[out / "features" / "tail.npz"] = (out / "features" / "tail.npz").stat().st_mtime_ns
    run_pipeline(TINY, out)
    log = capsys.readouterr().err
    for stage in ("base", "features", "cluster", "prototype", "dispersion", "abcd", "eval ours"):
        assert f"{stage}: done" in log, stage
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'clusters'"):
        MethodConfig.from_dict({"clusters": 3})
    with pytest.raises(ConfigError, match="mode"):
        MethodConfig.from_dict({"mode": "sometimes"})
    with pytest.raises(ConfigError, match="head.name: the method supports arcface, cosface, .*got .range_loss."):
        ExperimentConfig.from_dict({**TINY, "head": {"name": "range_loss"}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [1, 2")
    with pytest.raises(ConfigError, match="bad.yaml"):
        ExperimentConfig.load(bad)
    assert MethodConfig.from_dict({"budget": 10}).epochs(7) == (7, 4, 6)
    margin = HeadSpec.from_block({"name": "arcface", "s": 30, "m": 0.4}).margin
    assert (margin.kind, margin.scale, margin.value) == ("arcface", 30.0, 0.4)


def test_cli_reports_config_errors(tmp_path, capsys):
    assert cli_main(["run", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("name", [n for n, p in shipped_configs().items()
                                  if n.startswith("method/") and ExperimentConfig.load(p).method is not None])
def test_shipped_method_configs_validate_with_the_paper_split(name):
    cfg = ExperimentConfig.load(shipped_configs()[name])
    base, proto, disp = (cfg.stage_train(s).epochs for s in ("base", "prototype", "dispersion"))
    assert proto / (proto + disp) == pytest.approx(0.4)
    # the method's second phase has the baselines' budget: the train block's epochs
    assert proto + disp == cfg.train["epochs"] == base
