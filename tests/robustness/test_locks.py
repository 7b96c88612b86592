"""Run folders are locked (``tailface.locks``) and no user file is replaced by mistake (issue 24, items 2 and 4).

A second process on a folder in use is refused naming the holder; a lock left by a killed process,
or naming a pid now reused by another process, is taken over; ``--out`` naming a file is refused
by every verb before any work; ``tailface embed`` replaces only a features file it wrote, unless
``--force``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tailface import locks
from tailface.cli.main import main
from tailface.errors import OutputError
from tailface.eval.features import load_features, written_by_tailface

from ._helpers import SRC, TINY_BASELINE

HOLDER = """
import sys, time
from pathlib import Path
from tailface.locks import hold
try:
    with hold(Path(sys.argv[1]), "train"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
except Exception as exc:
    print(f"refused: {exc}", flush=True)
"""


def start_holder(folder: Path, seconds: float = 60) -> subprocess.Popen:
    """A real second process holding ``folder``'s lock (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("held"), line
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def tiny_config(tmp: Path) -> Path:
    doc = {**TINY_BASELINE, "eval": {}, "train": {**TINY_BASELINE["train"], "max_steps": 2}}
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def error_line(err: str, verb: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"tailface {verb}: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def test_second_process_on_a_folder_in_use_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    holder = start_holder(out)
    try:
        env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "tailface.cli", "train", str(tiny_config(tmp_path)), "--out",
                               str(out)], capture_output=True, text=True, env=env, timeout=300)
        assert holder.poll() is None  # the holder was not disturbed
    finally:
        stop(holder)
    assert done.returncode == 2, done.stderr[-3000:]
    message = error_line(done.stderr, "train")
    for part in (f"pid {holder.pid}", socket.gethostname(), "tailface train", "started 20",
                 str(out / locks.LOCK_NAME)):
        assert part in message, (part, message)
    assert not (out / "train").exists() and not (out / "config.yaml").exists()  # refused before any work


@pytest.mark.parametrize("verb", ["run", "train", "reproduce", "study"])
def test_every_run_verb_is_refused_on_a_folder_in_use(verb, tmp_path, capsys):
    out = tmp_path / "out"
    argv = {"run": ["run", str(tiny_config(tmp_path))], "train": ["train", str(tiny_config(tmp_path))],
            "reproduce": ["reproduce", "table2", "--profile", "synthetic"],
            "study": ["study", "synthetic"]}[verb]
    holder = start_holder(out)
    try:
        code = main([*argv, "--out", str(out)])
    finally:
        stop(holder)
    message = error_line(capsys.readouterr().err, verb)
    assert code == 2 and f"pid {holder.pid}" in message and "in use by another tailface process" in message
    assert sorted(p.name for p in out.iterdir()) == [locks.LOCK_NAME]  # the holder's lock only: nothing written


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_of_a_killed_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    holder = start_holder(out)
    os.kill(holder.pid, signal.SIGKILL)  # leaves its lock behind
    holder.wait()
    left = json.loads((out / locks.LOCK_NAME).read_text())
    assert left["pid"] == holder.pid
    with locks.hold(out, "train") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "took over a stale lock" in capsys.readouterr().err
    assert not (out / locks.LOCK_NAME).exists()  # released at the end of the block


def write_lock(out: Path, **fields) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rec = {**locks.record("train"), **fields}
    (out / locks.LOCK_NAME).write_text(json.dumps(rec))


def test_stale_lock_naming_a_dead_pid_is_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    write_lock(out, pid=dead_pid())
    with locks.hold(out, "train"):
        pass
    assert "is not running" in capsys.readouterr().err


def test_pid_reused_by_another_process_is_detected(tmp_path, capsys):
    out = tmp_path / "out"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = locks.process_start(other.pid)
        assert live is not None
        write_lock(out, pid=other.pid, proc_start=live[1] - 100)  # the lock's process started earlier
        with locks.hold(out, "train"):
            pass
        assert "was reused by another process" in capsys.readouterr().err
        write_lock(out, pid=other.pid, proc_start=live[1])  # the same pid and start time: alive
        with pytest.raises(OutputError, match=f"pid {other.pid}"):
            with locks.hold(out, "train"):
                pass
    finally:
        stop(other)


def test_racing_takers_of_a_stale_lock_get_it_one_at_a_time(tmp_path):
    out = tmp_path / "out"
    write_lock(out, pid=dead_pid())
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(out), "3"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": SRC}) for _ in range(4)]
    answers = [p.communicate(timeout=60)[0] for p in procs]
    assert sum(a.startswith("held") for a in answers) == 1, answers
    assert all(a.startswith(("held", "refused")) for a in answers), answers


def test_lock_is_released_on_an_exception_and_reentrant(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with locks.hold(out, "study"):
            with locks.hold(out, "reproduce"):  # study holds OUT and calls reproduce on it
                assert (out / locks.LOCK_NAME).is_file()
            assert (out / locks.LOCK_NAME).is_file()
            raise RuntimeError("boom")
    assert not (out / locks.LOCK_NAME).exists()


def test_cells_of_a_locked_folder_are_not_deadlocked(tmp_path):
    """``reproduce --jobs N``: the parent holds OUT, a cell process holds its own sub-folder."""
    out = tmp_path / "out"
    with locks.hold(out, "reproduce"):
        cell = start_holder(out / "cells" / "ab" / "seed0", seconds=0)
        assert cell.wait(timeout=60) == 0


@pytest.mark.parametrize("verb", ["train", "run", "eval", "reproduce", "study"])
def test_out_naming_a_file_is_refused_before_any_work(verb, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("the user's notes\n")
    argv = {"train": ["train", str(tiny_config(tmp_path))], "run": ["run", str(tiny_config(tmp_path))],
            "eval": ["eval", str(tmp_path / "model.pt")],
            "reproduce": ["reproduce", "table2", "--profile", "synthetic"], "study": ["study", "synthetic"]}[verb]
    before = sorted(tmp_path.iterdir())
    code = main([*argv, "--out", str(target)])
    message = error_line(capsys.readouterr().err, verb)
    assert code == 2 and f"{target}: --out names an existing file" in message, message
    assert target.read_text() == "the user's notes\n" and sorted(tmp_path.iterdir()) == before


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("model")
    assert main(["train", str(tiny_config(tmp)), "--out", str(tmp / "o")]) == 0
    return tmp / "o" / "train" / "final.pt"


def test_embed_refuses_a_users_file_before_extracting_any_feature(tmp_path, capsys):
    target = tmp_path / "afile.txt"
    target.write_text("keep me\n")
    code = main(["embed", str(tmp_path / "no-model.pt"), "synthetic", str(target)])  # refused before the model loads
    message = error_line(capsys.readouterr().err, "embed")
    assert code == 2 and "is not a features file tailface wrote" in message and "--force" in message
    assert target.read_text() == "keep me\n"
    np.savez(tmp_path / "user.npz", features=np.zeros((2, 2), np.float32), image_ids=np.array(["a", "b"]))
    assert main(["embed", str(tmp_path / "no-model.pt"), "synthetic", str(tmp_path / "user.npz")]) == 2


def test_embed_replaces_its_own_output_and_a_users_file_with_force(tmp_path, model, capsys):
    faces = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for i in range(2):
        (faces / f"id{i}").mkdir(parents=True)
        for j in range(2):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(faces / f"id{i}" / f"{j}.png")
    out = tmp_path / "feats.npz"
    assert main(["embed", str(model), str(faces), str(out), "--device", "cpu"]) == 0
    assert written_by_tailface(out)
    assert main(["embed", str(model), str(faces), str(out), "--device", "cpu"]) == 0  # its own output: replaced
    user = tmp_path / "afile.txt"
    user.write_text("mine\n")
    assert main(["embed", str(model), str(faces), str(user), "--device", "cpu", "--force"]) == 0
    assert len(load_features(user)["image_ids"]) == 4 and written_by_tailface(user)
