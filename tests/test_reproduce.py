"""`tailface reproduce` on tiny synthetic data: cells on the one runner, seed accumulation, tables."""

from __future__ import annotations

import pytest
import torch
import yaml

from tailface.cli.main import main
from tailface.evidence import cells
from tailface.evidence.cells import Profile
from tailface.evidence.reproduce import NAMES, needed_models, parse_names, reproduce
from tailface.experiment import ExperimentConfig

TINY = {"family": "synthetic", "data": "synthetic",
        "overrides": {"data": {"options": {"num_identities": 40, "image_size": 16, "max_images": 30},
                               "groups": {"a": 21, "b": 10, "c": 4}},
                      "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
                      "train": {"max_steps": 2, "progress": False, "num_workers": 0}}}


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("# a tiny test profile\n" + yaml.safe_dump(TINY))
    return Profile.load(str(path))


def test_every_cell_config_validates(profile, tmp_path):
    for seed in (0, 1):
        base = cells.final_checkpoint(tmp_path, "ab", seed)
        base.parent.mkdir(parents=True)
        base.write_bytes(b"")  # the AB cell's checkpoint must exist before an "ours" cell is configured
    for model in cells.MODELS:
        doc = cells.cell_config(profile, model, 1, tmp_path, fig3_sizes=(10, 100))
        cfg = ExperimentConfig.from_dict(doc, model)
        assert cfg.seed == 1
        if model in cells.METHOD_MODELS:
            assert cfg.method is not None and cfg.method.base == str(cells.final_checkpoint(tmp_path, "ab", 1))


def test_targets_and_shared_models():
    assert parse_names("all") == list(NAMES)
    order = needed_models(["table2", "table3"])
    assert order.count("abcd") == 1 and order.count("ab") == 1  # trained once for both tables
    assert order.index("ab") < order.index("ours") and order.index("ab") < order.index("arcface-ours")


def test_seeds_accumulate_and_tables_are_written(profile, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "repro"
    reproduce(["table2", "fig2"], profile, 1, out)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("final.pt")}
    text = (out / "table2.md").read_text()
    assert "| AB | " in text and "96.62" in text and "one seed" in text
    assert main(["reproduce", "table2,fig2", "--profile", str(tmp_path / "tiny.yaml"), "--seeds", "2",
                 "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # seed 0 not retrained
    assert cells.final_checkpoint(out, "ours", 1).is_file() and cells.final_checkpoint(out, "abcd", 1).is_file()
    text = (out / "table2.md").read_text()
    assert "(n=2)" in text and any(v in text for v in ("holds", "reversed", "within noise"))
    assert (out / "fig2.png").is_file() and "ABCD softmax (n=2)" in (out / "fig2.md").read_text()
    assert "skipped" in capsys.readouterr().err


def test_report_only_trains_nothing(profile, tmp_path):
    out = tmp_path / "repro"
    reproduce(["table2"], profile, 2, out, train=False)
    assert not (out / "cells").exists()
    text = (out / "table2.md").read_text()
    assert "| AB | - | 96.62 |" in text and "no paired seeds" in text
