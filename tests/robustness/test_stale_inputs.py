"""Nothing reused from other inputs (issue 24, items 1 and 3): one test per case, each failing on
the code before fingerprints (:mod:`tailface.fingerprints`):

- stale features after the pack changes: two different packs evaluated into one ``--out`` give
  each pack's own figures (the feature cache was keyed on the model file only);
- a resumed run given other data under the same ``--data`` (another folder at the same relative
  path, or the folder replaced) stops naming what changed; ``--accept-changed-inputs`` resumes;
- a config edited between runs (the run folder's own ``config.yaml``) stops naming the key; an
  edited evaluation block is redone, not refused;
- a stage's output reused only on a full match of its recorded inputs (an input replaced by an
  OLDER copy too, which the modification-time rule kept);
- a reproduce cell trained on another dataset (in OUT, or archived) is refused; a record written
  before fingerprints is unknown, one warning line, kept;
- a run folder written before fingerprints (no records) resumes, each stage saying so once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tailface.atomic import write_text
from tailface.cli.main import main
from tailface.errors import ConfigError
from tailface.eval.api import evaluate_checkpoint
from tailface.eval.protocols import Protocol, list_protocols, register_protocol
from tailface.evidence.cells import Profile
from tailface.evidence.reproduce import reproduce
from tailface.experiment.stages import Stage, run_stages
from tailface.fingerprints import config_print, file_print
from tailface.train import build_model

from ._helpers import TINY_MODEL

SIZE = 16


def faces(root: Path, seed: int, identities: int = 4, per: int = 4) -> Path:
    """``root/id<i>/<j>.png``, random pixels from ``seed`` (the same ids and labels for every seed)."""
    rng = np.random.default_rng(seed)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True, exist_ok=True)
        for j in range(per):
            Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / f"id{i}" / f"{j}.png")
    return root


def replace(folder: Path, seed: int) -> Path:
    shutil.rmtree(folder)
    return faces(folder, seed)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save({"model": build_model("small", input_size=SIZE, embedding_size=8).state_dict(),
                "meta": {"model_spec": {"name": "small", "kwargs": {"input_size": SIZE, "embedding_size": 8}}}}, path)
    return path


def test_two_packs_evaluated_into_one_out_give_each_packs_own_figures(model, tmp_path):
    """The issue's scenario: two differently aligned copies of LFW (same image ids, other pixels)."""
    if "test-lfw-mean" not in list_protocols():
        register_protocol(Protocol("test-lfw-mean", "lfw", lambda f, o: {"mean": float(np.abs(f.features).mean())},
                                   summary=lambda m: [("mean |feature|", f"{m['mean']:.6f}")]))
    torch.set_num_threads(1)
    first, second = faces(tmp_path / "lfw-a", seed=1), faces(tmp_path / "lfw-b", seed=2)

    def evaluate(pack: Path, out: str) -> dict:
        return evaluate_checkpoint(model, ["test-lfw-mean"], tmp_path / out, lfw=pack, plots=False)

    a, b = evaluate(first, "out"), evaluate(second, "out")
    alone = evaluate(second, "alone")
    assert b["test-lfw-mean"] == alone["test-lfw-mean"] != a["test-lfw-mean"]  # not the first pack's figure
    assert b["lfw_features"] != a["lfw_features"]
    assert a["eval_sets"]["lfw"]["spec"] == str(first) and b["eval_sets"]["lfw"]["spec"] == str(second)
    assert a["eval_sets"]["lfw"]["fingerprint"] != b["eval_sets"]["lfw"]["fingerprint"]
    assert b["eval_sets"]["lfw"]["images"] == 16 and b["checkpoint_sha256"] == file_print(model)["sha256"]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["eval_sets"] == json.loads(json.dumps(b["eval_sets"]))
    assert evaluate(second, "out")["lfw_features"] == b["lfw_features"]  # the same pack: its cache is reused
    shutil.rmtree(first)
    shutil.copytree(second, first)  # the first pack re-aligned in place: same path, other images
    assert evaluate(first, "out")["test-lfw-mean"] == alone["test-lfw-mean"]


def tiny_config(path: Path, data: str, eval_block: dict | None = None) -> Path:
    doc = {"name": "tiny", "data": {"train": data}, "model": {**TINY_MODEL, "embedding_size": 8},
           "head": {"name": "softmax"}, "eval": eval_block or {},
           "train": {"epochs": 1, "batch_size": 4, "max_steps": 3, "checkpoint_every": 1, "progress": False}}
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_resumed_run_given_other_data_under_the_same_data_stops(tmp_path, monkeypatch, capsys):
    """``--data faces`` names another folder from another working directory: the config is the
    same text, the data is not. The trainer's own check (classes, model) cannot tell."""
    torch.set_num_threads(1)
    here, there, out = tmp_path / "here", tmp_path / "there", tmp_path / "o"
    faces(here / "faces", seed=1)
    faces(there / "faces", seed=2)
    config = tiny_config(tmp_path / "c.yaml", "synthetic")
    monkeypatch.chdir(here)
    assert main(["train", str(config), "--out", str(out), "--data", "faces"]) == 0
    (out / "train" / "final.pt").unlink()  # as if killed in the middle: last.pt is kept
    capsys.readouterr()
    monkeypatch.chdir(there)
    assert main(["train", str(config), "--out", str(out), "--data", "faces"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(re.escape(f"tailface train: error: {out / 'train' / 'last.pt'}: made from other inputs than "
                                  "now (data faces: listing differs, fingerprint ") + "[0-9a-f]{12} -> [0-9a-f]{12}"
                        + re.escape(f"); to keep it and go on: --accept-changed-inputs; to redo it: delete "
                                    f"{out / 'train'} (or use another --out)") + "\n", err), err
    assert not (out / "train" / "final.pt").exists()
    assert main(["train", str(config), "--out", str(out), "--data", "faces", "--accept-changed-inputs"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "kept (--accept-changed-inputs)" in err and "resuming from" in err
    assert (out / "train" / "final.pt").is_file()
    assert main(["train", str(config), "--out", str(out), "--data", "faces"]) == 0  # the accepted inputs recorded
    assert "train: done" in capsys.readouterr().err
    replace(there / "faces", seed=3)  # a finished stage, its data replaced in place
    assert main(["train", str(config), "--out", str(out), "--data", "faces"]) == 2
    assert f"{out / 'train' / 'final.pt'}: made from other inputs than now (data faces: " in capsys.readouterr().err


def test_a_config_edited_between_runs_stops_naming_the_key(tmp_path, capsys):
    """``tailface train OUT/config.yaml --out OUT`` after editing it: the folder's guard compares the
    config with itself; the stages' records do not."""
    torch.set_num_threads(1)
    out = tmp_path / "o"
    config = tiny_config(tmp_path / "c.yaml", str(faces(tmp_path / "faces", seed=1)),
                         {"protocols": ["synthetic"], "batch_size": 64})
    assert main(["train", str(config), "--out", str(out)]) == 0
    saved = out / "config.yaml"
    doc = yaml.safe_load(saved.read_text())
    doc["train"]["lr"] = 0.05
    saved.write_text(yaml.safe_dump(doc, sort_keys=False))
    capsys.readouterr()
    assert main(["train", str(saved), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"tailface train: error: {out / 'train' / 'final.pt'}: made from other inputs than now (train: lr "
                   f"0.1 -> 0.05); to keep it and go on: --accept-changed-inputs; to redo it: delete {out / 'train'} "
                   "(or use another --out)\n")
    assert main(["train", str(saved), "--out", str(out), "--accept-changed-inputs"]) == 0
    assert "made from other inputs (train: lr 0.1 -> 0.05); kept (--accept-changed-inputs)" in capsys.readouterr().err
    metrics = out / "eval" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    doc["eval"]["batch_size"] = 32  # an evaluation is cheap to redo: redone, not refused
    saved.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["train", str(saved), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "eval: inputs changed (eval: batch_size 64 -> 32): redone" in err and "train: done" in err
    assert metrics.stat().st_mtime_ns != before


def test_a_stage_output_is_reused_only_on_a_full_match(tmp_path, capsys):
    source, output = tmp_path / "in.txt", tmp_path / "summary" / "out.txt"
    source.write_text("a")
    calls: list[str] = []

    def make() -> None:
        calls.append(source.read_text())
        write_text(output, source.read_text().upper())

    stage = Stage("summary", output, make, (source,), derived=True, fingerprints=lambda: {"in": file_print(source)})
    run_stages([stage])
    run_stages([stage])
    assert calls == ["a"] and (tmp_path / "summary" / "out.inputs.json").is_file()
    old = output.stat().st_mtime_ns - 10**9
    source.write_text("b")  # another input, OLDER than the output: the modification-time rule keeps the output
    os.utime(source, ns=(old, old))
    assert stage.is_done()
    run_stages([stage])
    assert calls == ["a", "b"] and output.read_text() == "B"
    capsys.readouterr()
    run_stages([stage], common={"data": config_print({"v": 1})})  # an input the record does not know: kept
    assert calls == ["a", "b"] and "no record of its inputs data" in capsys.readouterr().err
    run_stages([stage], common={"data": config_print({"v": 2})})
    assert calls == ["a", "b", "b"] and "inputs changed (data: v 1 -> 2): redone" in capsys.readouterr().err

    work, partial = tmp_path / "train" / "final.pt", tmp_path / "train" / "last.pt"
    settings = {"lr": 0.1}
    trained: list[int] = []

    def train() -> None:
        trained.append(1)
        write_text(work, "weights")

    kept = Stage("train", work, train, fingerprints=lambda: {"train": config_print(settings)}, keeps_work=True,
                 partial=partial)
    run_stages([kept])
    settings["lr"] = 0.2
    with pytest.raises(ConfigError, match=r"final.pt: made from other inputs than now \(train: lr 0.1 -> 0.2\); "
                                          r"to keep it and go on: --accept-changed-inputs"):
        run_stages([kept])
    run_stages([kept], accept_changed=True)
    run_stages([kept])  # the accepted inputs are the record now
    assert trained == [1] and work.read_text() == "weights"
    work.unlink()
    write_text(partial, "half")  # an interrupted stage with other inputs: not resumed without the flag
    settings["lr"] = 0.3
    with pytest.raises(ConfigError, match=r"last.pt: made from other inputs than now \(train: lr 0.2 -> 0.3\)"):
        run_stages([kept])
    (tmp_path / "train" / "final.inputs.json").unlink()  # a folder written before fingerprints: unknown
    capsys.readouterr()
    run_stages([kept])
    assert trained == [1, 1] and "WARNING" in capsys.readouterr().err


def test_a_run_folder_written_before_fingerprints_resumes(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "o"
    config = tiny_config(tmp_path / "c.yaml", str(faces(tmp_path / "faces", seed=1)),
                         {"protocols": ["synthetic"], "batch_size": 64})
    assert main(["train", str(config), "--out", str(out)]) == 0
    for record in out.rglob("*.inputs.json"):
        record.unlink()  # as written by tailface before fingerprints
    (out / "train" / "final.pt").unlink()
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("no record of its inputs (written before tailface recorded them)") == 1  # train, resumed
    assert "resuming from" in err and (out / "train" / "final.inputs.json").is_file()
    for record in out.rglob("*.inputs.json"):
        record.unlink()
    assert main(["train", str(config), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("no record of its inputs") == 2 and "train: done" in err and "eval: done" in err


def test_a_reproduce_cell_trained_on_another_dataset_is_refused(tmp_path, monkeypatch, capsys):
    data = faces(tmp_path / "faces", seed=1)
    profile_path = tmp_path / "tiny.yaml"
    profile_path.write_text("# tiny\n" + yaml.safe_dump({
        "family": "synthetic", "data": str(data),
        "overrides": {"data": {"options": {}}, "model": TINY_MODEL, "train": {"max_steps": 2, "progress": False}}}))
    profile = Profile.load(str(profile_path))
    trained: list[str] = []

    def run(cfg, out, command, **options):  # training replaced: an empty model and fixed metrics
        trained.append(cfg.name)
        (out / "train").mkdir(parents=True, exist_ok=True)
        (out / "train" / "final.pt").write_bytes(b"")
        write_text(out / "eval" / "metrics.json", json.dumps(
            {"blufr": {"report": {"vr_far_0.1%": {"mean": 0.5, "std": 0.0}, "dir_far_1%_rank1": {"mean": 0.2}}}}))

    monkeypatch.setattr("tailface.evidence.reproduce.run_experiment", run)
    out, kept = tmp_path / "o", tmp_path / "kept"
    args = ["reproduce", "table2", "--profile", str(profile_path), "--out", str(out), "--only", "ab"]
    assert main([*args, "--archive", str(kept)]) == 0
    first = (out / "cells" / "ab" / "seed0" / "cell.json").read_text()
    replace(data, seed=2)  # the profile's spec names other data now
    capsys.readouterr()
    assert main(args) == 2
    record = json.loads(first)
    assert record["data"]["spec"] == str(data) and len(record["data"]["sha256"]) == 64
    assert json.loads((kept / "cells" / "ab" / "seed0" / "cell.json").read_text())["data"] == record["data"]
    err = capsys.readouterr().err
    cell = out / "cells" / "ab" / "seed0"
    assert err.startswith(f"tailface reproduce: error: {cell / 'cell.json'}: ab seed 0 was trained on other data than "
                          f"this run's (data {data}: ") and err.count("\n") == 1
    assert err.endswith(f"); delete {cell} to train it again, use another --out, or --accept-changed-inputs to keep "
                        "it\n")
    assert main([*args, "--accept-changed-inputs"]) == 0 and trained == ["ab-seed0"]
    shutil.rmtree(out)  # OUT wiped: the archived cell, trained on the first data, is refused too
    assert main([*args, "--archive", str(kept)]) == 2
    assert f"{kept / 'cells' / 'ab' / 'seed0' / 'cell.json'}: ab seed 0 was trained on other data" in \
        capsys.readouterr().err
    archived = kept / "cells" / "ab" / "seed0" / "cell.json"
    archived.write_text(json.dumps({k: v for k, v in json.loads(archived.read_text()).items() if k != "data"}))
    reproduce(["table2"], profile, 1, out, only=["ab"], archive=kept)  # archived before fingerprints: unknown
    err = capsys.readouterr().err
    assert "WARNING: 1 cell records hold no fingerprint of their training data" in err and err.count("WARNING") == 1
    assert trained == ["ab-seed0"]


def test_the_methods_clustering_is_redone_and_its_trained_stages_refused_when_its_settings_change(tmp_path, capsys):
    """method.num_super_factor edited in the run folder's config: the clustering (cheap) is redone,
    the prototype trained on the old super classes stops the run, naming the file that changed."""
    from ._helpers import TINY_METHOD

    torch.set_num_threads(1)
    out = tmp_path / "o"
    config = tmp_path / "m.yaml"
    config.write_text(yaml.safe_dump({**TINY_METHOD, "eval": {}}))
    assert main(["run", str(config), "--out", str(out)]) == 0
    before = (out / "cluster" / "super_classes.json").read_text()
    saved = out / "config.yaml"
    doc = yaml.safe_load(saved.read_text())
    doc["method"]["num_super_factor"] = 0.5
    saved.write_text(yaml.safe_dump(doc, sort_keys=False))
    capsys.readouterr()
    assert main(["run", str(saved), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cluster: inputs changed (clustering: num_super_factor 1.0 -> 0.5): redone" in err
    assert "base: done" in err and "features: done" in err
    assert (out / "cluster" / "super_classes.json").read_text() != before
    last = err.strip().splitlines()[-1]
    digests = "[0-9a-f]{12} -> [0-9a-f]{12}"
    assert re.fullmatch(re.escape(f"tailface run: error: {out / 'prototype' / 'final.pt'}: made from other inputs "
                                  "than now (training set: other labels or images (") + "[^)]*"
                        + re.escape("), fingerprint ") + digests
                        + re.escape("; cluster/super_classes.json: other contents (sha256 ") + digests
                        + re.escape(f")); to keep it and go on: --accept-changed-inputs; to redo it: delete "
                                    f"{out / 'prototype'} (or use another --out)"), last), last
