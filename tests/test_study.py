"""`tailface study` on the built-in data (tiny): held-out identities, the sweep, a one-page answer."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tailface.cli.main import main
from tailface.data.training_set import open_heldout, open_pool
from tailface.errors import ConfigError
from tailface.evidence import cells
from tailface.evidence.study import HOLDOUT, study
from tailface.experiment import ExperimentConfig
from tailface.experiment.config import DataConfig

TINY = {"data": {"options": {"num_identities": 40, "image_size": 16, "max_images": 30}},
        "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
        "train": {"max_steps": 2, "progress": False}}


def test_holdout_identities_are_disjoint_from_training():
    data = DataConfig(train="synthetic", options=TINY["data"]["options"], holdout={"fraction": 0.25, "seed": 0})
    train, test = open_pool(data), open_heldout(data)
    assert set(train.class_names).isdisjoint(test.class_names)
    everything = open_pool(DataConfig(train="synthetic", options=TINY["data"]["options"]))
    assert len(train) + len(test) == len(everything)
    assert test.num_classes == round(0.25 * int((everything.class_counts() >= 2).sum()))
    assert np.all(test.class_counts() >= 2)
    with pytest.raises(ConfigError, match="heldout' needs data.holdout"):
        ExperimentConfig.from_dict({"eval": {"protocols": ["heldout"]}})


def test_study_answers_with_intervals(tmp_path):
    torch.set_num_threads(1)
    report = study("synthetic", "cpu", 1, tmp_path / "study", overrides=TINY)
    text = report.read_text()
    for part in ("Does the tail hurt plain softmax here", "Does aggregate-and-disperse help", "Recommendation",
                 "## Groups of the data", "## Tail sweep", "cannot be told with one seed",
                 "8 cells, 1 torch thread(s) each, 1 at once, trained at commit"):
        assert part in text, part
    data = DataConfig(train="synthetic", options=TINY["data"]["options"], holdout=dict(HOLDOUT))
    train, held = open_pool(data), open_heldout(data)
    assert f"({held.num_classes:,} identities, {len(held):,} images)" in text
    total = re.search(r"total\s+all\s+([\d,]+)", text)  # the group table counts the training identities only
    assert total is not None and total.group(1) == f"{train.num_classes:,}"
    metrics = (cells.metrics_path(tmp_path / "study", "ours", 0)).read_text()
    assert '"heldout"' in metrics
    assert (tmp_path / "study" / "sweep.png").is_file()


def test_cli_study_rejects_bad_seeds(capsys):
    assert main(["study", "synthetic", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
