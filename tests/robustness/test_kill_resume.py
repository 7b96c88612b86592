"""Kill and resume: ``tailface run`` (aggregate-and-disperse) and ``tailface train`` (a baseline)
are killed with SIGKILL at chosen points (``TAILFACE_TEST_KILL_AT``, :mod:`tailface.faults`),
resumed with the same command each time, and end with the same weights, tensor for tensor, and the
same metrics as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
import yaml

from tailface.experiment import ExperimentConfig, run_experiment

from ._helpers import TINY_BASELINE, TINY_METHOD, assert_same_weights, cli

# one kill per process, in this order; each point is reached by the run it is given to
METHOD_KILLS = [
    "step.base:2",          # base model, mid-epoch (last.pt holds step 1)
    "features:1",           # during the tail feature extraction
    "tmp-written.tail.npz:1",  # the tail features' temporary file written, not renamed
    "cluster:1",            # during clustering
    "tmp-written.super_classes.json:1",  # the super-class map's temporary file written, not renamed
    "tmp-written.last.pt:2",  # prototype, mid-epoch: last.pt (step 2) written to its temporary file, not renamed
    "step.dispersion:2",    # dispersion model, mid-epoch
    "tmp-written.final.pt:1",  # dispersion model: final.pt's temporary file written, not renamed
    "features:1",           # during the evaluation's feature extraction
    "stage.norms:1",        # at the start of the row-norm stage
    "stage.report:1",       # at the start of the report
]
BASELINE_KILLS = [
    "step.train:2",         # mid-epoch
    "tmp-written.last.pt:2",  # last.pt (step 3) written to its temporary file, not renamed
    "features:1",           # during the evaluation's feature extraction
    "tmp-written.metrics.json:1",  # metrics.json written to its temporary file, not renamed
]


def _reference(doc: dict, out) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_experiment(ExperimentConfig.from_dict(doc), out)
    finally:
        torch.set_num_threads(threads)


def _killed_and_resumed(tmp_path, doc: dict, command: str, kills: list[str]):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(doc))
    out = tmp_path / "killed"
    args = [command, str(config), "--out", str(out)]
    for kill in kills:
        proc = cli(args, kill_at=kill)
        assert proc.returncode == -signal.SIGKILL, f"{kill}: not killed (rc {proc.returncode})\n{proc.stderr[-3000:]}"
    proc = cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(out.rglob("*.tmp*")), list(out.rglob("*.tmp*"))
    return out, proc.stderr


def test_pipeline_killed_at_every_stage_resumes_bit_identical(tmp_path):
    reference = tmp_path / "reference"
    _reference(TINY_METHOD, reference)
    out, log = _killed_and_resumed(tmp_path, TINY_METHOD, "run", METHOD_KILLS)
    for stage in ("base", "prototype", "dispersion"):
        assert_same_weights(reference / stage / "final.pt", out / stage / "final.pt")
    for path in ("eval/ours/metrics.json", "norms/norms.json", "cluster/super_classes.json"):
        # the run folder's name is the one difference allowed (paths of the checkpoint, plots, records)
        a = json.loads((reference / path).read_text().replace(str(reference), "RUN"))
        b = json.loads((out / path).read_text().replace(str(out), "RUN"))
        assert a == b, path
    assert "base: done" in log and "report" in log


def test_baseline_killed_mid_epoch_mid_checkpoint_and_mid_eval_resumes_bit_identical(tmp_path):
    reference = tmp_path / "reference"
    _reference(TINY_BASELINE, reference)
    out, log = _killed_and_resumed(tmp_path, TINY_BASELINE, "train", BASELINE_KILLS)
    assert_same_weights(reference / "train" / "final.pt", out / "train" / "final.pt")
    a = json.loads((reference / "eval" / "metrics.json").read_text())
    b = json.loads((out / "eval" / "metrics.json").read_text())
    assert a["synthetic"] == b["synthetic"]
    assert "train: done" in log


@pytest.mark.parametrize("point", ["nowhere:1"])
def test_an_unset_or_unmatched_kill_point_costs_nothing(point, monkeypatch):
    from tailface import faults

    monkeypatch.setenv(faults.ENV, point)
    faults.point("step.base")  # another point: returns
    monkeypatch.delenv(faults.ENV)
    faults.point("nowhere")


def _tiny_profile_and_table2_reference(tmp_path, steps: int):
    """A tiny synthetic profile (``tmp_path/tiny.yaml``) and ``tailface reproduce table2`` on it,
    uninterrupted, in ``tmp_path/reference`` (one torch thread)."""
    from tailface.evidence.cells import Profile
    from tailface.evidence.reproduce import reproduce

    from ._helpers import TINY_DATA

    profile_doc = {"family": "synthetic", "data": "synthetic",
                   "overrides": {"data": {"options": TINY_DATA["options"]}, "model": TINY_METHOD["model"],
                                 "train": {"max_steps": steps, "checkpoint_every": 1, "progress": False}}}
    profile = tmp_path / "tiny.yaml"
    profile.write_text("# tiny\n" + yaml.safe_dump(profile_doc))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reproduce(["table2"], Profile.load(str(profile)), 1, tmp_path / "reference")
    finally:
        torch.set_num_threads(threads)
    return profile


def test_reproduce_killed_resumes_without_recomputing_finished_cells(tmp_path):
    """``tailface reproduce``: a finished cell is skipped (not retrained, not re-evaluated), the
    interrupted one resumes; every cell ends as in an uninterrupted invocation."""
    from tailface.evidence import cells

    profile = _tiny_profile_and_table2_reference(tmp_path, steps=2)
    out = tmp_path / "killed"
    args = ["reproduce", "table2", "--profile", str(profile), "--out", str(out)]
    proc = cli(args, kill_at="step.train:3")  # the second cell, mid-epoch
    assert proc.returncode == -signal.SIGKILL, f"rc {proc.returncode}\n{proc.stderr[-3000:]}"
    first = {p: p.stat().st_mtime_ns for p in (out / "cells" / "softmax-A").rglob("*") if p.is_file()}
    assert any(p.name == "metrics.json" for p in first)
    proc = cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "softmax-A seed 0: done" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in first} == first  # the finished cell was not recomputed
    for model in ("softmax-A", "ab", "softmax-ABC", "abcd"):
        assert_same_weights(cells.final_checkpoint(tmp_path / "reference", model, 0),
                            cells.final_checkpoint(out, model, 0))
        a = json.loads(cells.metrics_path(tmp_path / "reference", model, 0).read_text())
        b = json.loads(cells.metrics_path(out, model, 0).read_text())
        assert a["synthetic"] == b["synthetic"], model
    assert (out / "table2.md").is_file()


def test_reproduce_with_jobs_a_killed_cell_stops_the_others_and_all_resume(tmp_path):
    """``--jobs 2``: a cell process killed mid-epoch fails the command (exit 1, the cell and its log
    named), the cell beside it is stopped; the same command then resumes both and every cell ends
    with the weights of an uninterrupted one-at-a-time run (one torch thread in both)."""
    from tailface.evidence import cells

    profile = _tiny_profile_and_table2_reference(tmp_path, steps=3)
    out = tmp_path / "killed"
    args = ["reproduce", "table2", "--profile", str(profile), "--out", str(out), "--jobs", "2"]
    proc = cli(args, kill_at="step.train:2")  # every cell process dies at its second step; the first stops the run
    assert proc.returncode == 1, f"rc {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "seed 0 failed: killed by SIGKILL" in proc.stderr and "rerun the same command" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(cells.final_checkpoint(out, m, 0).is_file() for m in ("softmax-A", "ab", "softmax-ABC", "abcd"))
    proc = cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the cell that killed itself had written last.pt (step 1); the one stopped beside it may not have
    assert any("resuming from last.pt" in (out / "logs" / f"{m}-seed0.log").read_text() for m in ("softmax-A", "ab"))
    for model in ("softmax-A", "ab", "softmax-ABC", "abcd"):
        assert_same_weights(cells.final_checkpoint(tmp_path / "reference", model, 0),
                            cells.final_checkpoint(out, model, 0))
    assert (out / "table2.md").is_file()


def _children(pid: int) -> list[int]:
    from pathlib import Path

    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{pid}\n" in status.read_text():
                found.append(int(status.parent.name))
        except OSError:  # the process ended while we looked
            pass
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "(zombie)" not in status.read()
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="lists child processes through /proc (Linux)")
def test_reproduce_with_jobs_killed_leaves_no_cell_running(tmp_path):
    """``--jobs 2`` killed with SIGKILL (nothing of it runs any more): its cell processes end too, so a
    rerun never trains a cell twice at once into the same folder."""
    import subprocess
    import sys
    import time

    from ._helpers import SRC, TINY_DATA

    profile = tmp_path / "tiny.yaml"
    profile.write_text("# tiny\n" + yaml.safe_dump(
        {"family": "synthetic", "data": "synthetic",
         "overrides": {"data": {"options": TINY_DATA["options"]}, "model": TINY_METHOD["model"],
                       "train": {"epochs": 100000, "progress": False}}}))  # long enough to be killed in it
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tailface.cli", "reproduce", "table2", "--profile", str(profile),
                             "--out", str(tmp_path / "out"), "--jobs", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(children := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(children) >= 2, "the two cell processes did not start"  # (and multiprocessing's resource tracker)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 60  # a cell process looks for its parent every 2 s
    while (alive := [c for c in children if _running(c)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive, f"cell processes {alive} outlived the killed command"
