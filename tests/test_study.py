"""`tailface study` on the built-in data (tiny): held-out identities, the sweep, a one-page answer; the
data checked and the plan said before any cell trains, progress across cells, pages that name the
study (issue 24, items 5 and 6). One tiny study runs once for the module (:func:`studied`)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.study_run import run_study

from tailface.cli.main import build_parser, main
from tailface.data.training_set import open_heldout, open_pool
from tailface.errors import ConfigError
from tailface.eval.synthetic import gallery_split
from tailface.evidence import cells
from tailface.evidence.cost import Rate, Work, cell_work
from tailface.evidence.progress import CellProgress
from tailface.evidence.study import HOLDOUT, study_profile
from tailface.evidence.study_plan import DEFAULT_SEEDS, seeds_outlook
from tailface.experiment import ExperimentConfig
from tailface.experiment.config import DataConfig

TINY = {"data": {"options": {"num_identities": 40, "image_size": 16, "max_images": 30}},
        "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
        "train": {"max_steps": 2, "progress": False}}


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """``tailface study synthetic --profile tiny.yaml --seeds 1 --out OUT`` run once: (OUT, its stderr,
    the command line)."""
    return run_study(tmp_path_factory.mktemp("study"), TINY, "--seeds", "1")


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


def test_study_answers_with_intervals(studied):
    out, _, _ = studied
    text = (out / "study.md").read_text()
    for part in ("Does the tail hurt plain softmax here", "Does aggregate-and-disperse help", "Recommendation",
                 "## Groups of the data", "## Tail sweep", "cannot be told with one seed",
                 "8 cells, 1 torch thread(s) each, 1 at once, trained at commit"):
        assert part in text, part
    data = DataConfig(train="synthetic", options=TINY["data"]["options"], holdout=dict(HOLDOUT))
    train, held = open_pool(data), open_heldout(data)
    assert f"({held.num_classes:,} identities, {len(held):,} images)" in text
    total = re.search(r"total\s+all\s+([\d,]+)", text)  # the group table counts the training identities only
    assert total is not None and total.group(1) == f"{train.num_classes:,}"
    metrics = (cells.metrics_path(out, "ours", 0)).read_text()
    assert '"heldout"' in metrics
    assert (out / "sweep.png").is_file()


def test_the_plan_is_said_before_any_cell_trains(studied):
    _, log, _ = studied
    lines = log.splitlines()
    plan = [i for i, line in enumerate(lines) if line.startswith("tailface study: plan: ")]
    first_cell = min(i for i, line in enumerate(lines) if "cell 1 of 8: started" in line)
    first_training = min(i for i, line in enumerate(lines) if line.startswith("tailface study: ab seed 0: -> "))
    assert plan and max(plan) < first_cell < first_training
    text = "\n".join(lines[i] for i in plan)
    assert ("8 models x 1 seed = 8 cells (ab, sweep-C25, sweep-C50, softmax-ABC, sweep-D25, sweep-D50, abcd, ours): "
            "0 finished, 8 to train") in text
    assert "ONE SEED CANNOT ORDER ANYTHING" in text and f"--seeds {DEFAULT_SEEDS} (the default)" in text
    estimate = re.search(r"estimated (.+) for the 8 cells to train \(1 at once\): ([\d,]+) training image passes "
                         r".*at the measured ([\d.]+) ms per training image, timed over (\d+) steps of the AB model",
                         text)
    assert estimate is not None, text
    assert float(estimate.group(3)) > 0 and int(estimate.group(4)) >= 2


def test_progress_across_cells_with_the_time_left(studied):
    _, log, _ = studied
    for k in range(1, 9):
        assert re.search(rf"tailface study: \S+ seed 0: cell {k} of 8: started; about .+ left \(ETA \d\d:\d\d\)", log)
        assert f"cell {k} of 8: finished in " in log
    assert "cell 8 of 8: finished in" in log and "8 of 8 done, all cells trained" in log


def test_log_lines_and_pages_name_the_study_command(studied):
    out, log, command = studied
    assert "tailface reproduce" not in log
    assert "tailface study: ab seed 0: -> " in log and "tailface study: train: " in log  # the cells' stages too
    for page in ("study.md", "sweep.md", "table1.md"):
        text = (out / page).read_text()
        assert f"`{command}`" in text.splitlines()[2], page  # the header names the command that rewrites it
        for false in ("tailface reproduce", "--profile study-", "MegaFace-style proxy", "BLUFR trial std"):
            assert false not in text, (page, false)


def test_dir_column_states_its_resolution(studied):
    out, log, _ = studied
    data = DataConfig(train="synthetic", options=TINY["data"]["options"], holdout=dict(HOLDOUT))
    held = open_heldout(data).labels
    gallery, probes = gallery_split(held)
    genuine = int(np.isin(held[probes], held[gallery]).sum())
    points = f"one probe = {100 / genuine:.2f} points"
    sweep = (out / "sweep.md").read_text()
    assert f"| DIR@FAR=1% ({points}) |" in sweep and f"{genuine} genuine probes, {points}" in sweep
    assert f"{len(probes) - genuine} impostor probes" in sweep
    assert points in (out / "study.md").read_text() and points in log  # the page and the plan


def test_cli_study_rejects_bad_seeds(capsys):
    assert main(["study", "synthetic", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_default_seeds_can_answer():
    args = build_parser().parse_args(["study", "somewhere"])
    assert args.seeds == DEFAULT_SEEDS == 3 and args.holdout == HOLDOUT["fraction"]
    assert "ONE SEED CANNOT ORDER ANYTHING" in seeds_outlook(1)
    assert "2.48 x" in seeds_outlook(3) and "resolves 3.6x finer" in seeds_outlook(2)


def faces(root: Path, identities: int, per: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(identities):
        (root / f"id{i:02d}").mkdir(parents=True, exist_ok=True)
        for j in range(per):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / f"id{i:02d}" / f"{j}.png")
    return root


def study_error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 30  # refused up front, not after training
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "data.holdout" not in errors[0]  # the user's words, not the study's config keys
    return errors[0]


def test_data_without_a_tail_is_refused_before_any_cell_trains(tmp_path, capsys):
    root = faces(tmp_path / "faces", 12, 12)  # every identity has 12 images: group B, no tail
    message = study_error(["study", str(root), "--out", str(tmp_path / "o")], capsys)
    assert message.startswith(f"tailface study: error: {root}: no tail to study: ")
    assert f"tailface analyze {root} shows the groups" in message
    assert not (tmp_path / "o" / "cells").exists()


def test_a_test_set_that_cannot_answer_is_refused_in_the_users_words(tmp_path, capsys):
    root = faces(tmp_path / "faces", 8, 8)
    message = study_error(["study", str(root), "--out", str(tmp_path / "o")], capsys)
    assert (f"{root}: too few test identities for tailface study: it holds out 20% (--holdout 0.2) of the 8 "
            "identities with >= 2 images, i.e. 2 identities with 7 genuine and 8 impostor probes") in message
    assert message.endswith("hold out more with --holdout 0.5")
    message = study_error(["study", str(root), "--holdout", "0.5", "--out", str(tmp_path / "o")], capsys)
    assert "no head to study" in message  # the test set answers now; the next check speaks
    assert not (tmp_path / "o" / "cells").exists()


def test_cell_work_is_epochs_times_images_in_whole_batches():
    profile = study_profile("synthetic", "cpu", TINY)
    pool = open_pool(DataConfig(train="synthetic", options=TINY["data"]["options"], holdout=dict(HOLDOUT)))
    doc = cells.cell_config(profile, "abcd", 0, Path("/nowhere"), "synthetic")
    doc["train"] = {**doc["train"], "max_steps": None, "epochs": 3, "batch_size": 16}
    assert cell_work(doc, pool, 54, "abcd").passes == 3 * (len(pool) // 16) * 16  # ABCD: the whole pool
    doc["train"]["max_steps"] = 2
    assert cell_work(doc, pool, 54, "abcd").passes == 2 * 16
    rate = Rate(train_s=0.002, eval_s=0.001, steps=3, batch=16, threads=1, device="cpu")
    assert Work(1000, 54).seconds(rate) == pytest.approx(1000 * 0.002 + 54 * 0.001)


def test_progress_corrects_the_estimate_with_the_cells_measured_times():
    said, now = [], [0.0]
    progress = CellProgress([("a", 0), ("b", 0)], lambda cell, msg: said.append(f"{cell}: {msg}"),
                            {("a", 0): 10.0, ("b", 0): 30.0}, clock=lambda: now[0], wall_clock=lambda: 0.0)
    progress.started(("a", 0))
    assert said[-1].startswith("a seed 0: cell 1 of 2: started; about 40 s left")  # the estimate itself
    now[0] = 20.0  # a took twice its estimate: b is expected to as well
    progress.finished(("a", 0))
    assert "cell 1 of 2: finished in 20 s; 1 of 2 done, about 1.0 min left" in said[-1]
    progress.started(("b", 0))
    now[0] = 80.0
    progress.finished(("b", 0))
    assert said[-1].endswith("cell 2 of 2: finished in 1.0 min; 2 of 2 done, all cells trained")
