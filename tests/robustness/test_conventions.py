"""The conventions a face engineer expects (issue 24, item 8), one test each, and their bad inputs
(docs/errors.md, "Command-line conventions"): each such row ends with exit code 2 and one line.

``eval`` without ``--protocols`` picks the real-face protocols when their data is prepared and
says which ran and why; ``eval`` takes ``--device``; a shipped config's ``data/NAME`` reads
``$TAILFACE_DATA/NAME``; ``embed`` writes OUT as named, as its help says; one spelling of the group
thresholds; ``--no-progress`` on every verb that shows progress; ``95%`` printed once in help; the
README installs extras from the clone; CosFace configs shipped; a bad flag is blamed on the flag."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import tailface
import tailface.experiment
from tailface.cli.eval import default_protocols
from tailface.cli.main import build_parser, main
from tailface.configs import shipped_configs
from tailface.eval import api
from tailface.eval.features import load_features
from tailface.evidence import archive, cells
from tailface.experiment import ExperimentConfig

from ._helpers import TINY_BASELINE, TINY_TRAIN

REPO = Path(tailface.__file__).resolve().parents[2]


def write_folder(root: Path, identities: int = 3, per: int = 4, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True, exist_ok=True)
        for j in range(per):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"id{i}" / f"{j}.png")
    return root


def train_tiny(tmp: Path, data: str, **train) -> Path:
    doc = {**TINY_BASELINE, "data": {"train": data}, "eval": {},
           "train": {**TINY_TRAIN, "batch_size": 4, "max_steps": 2, **train}}
    (tmp / "c.yaml").write_text(yaml.safe_dump(doc))
    assert main(["train", str(tmp / "c.yaml"), "--out", str(tmp / "o")]) == 0
    return tmp / "o" / "train" / "final.pt"


@pytest.fixture(scope="module")
def synthetic_model(tmp_path_factory) -> Path:
    """A tiny model trained on the built-in synthetic data."""
    tmp = tmp_path_factory.mktemp("synthetic_model")
    doc = {**TINY_BASELINE, "eval": {}, "train": {**TINY_BASELINE["train"], "max_steps": 2}}
    (tmp / "c.yaml").write_text(yaml.safe_dump(doc))
    assert main(["train", str(tmp / "c.yaml"), "--out", str(tmp / "o")]) == 0
    return tmp / "o" / "train" / "final.pt"


@pytest.fixture(scope="module")
def face_model(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny model trained on a folder of face images (a "face model"), and that folder."""
    tmp = tmp_path_factory.mktemp("face_model")
    faces = write_folder(tmp / "faces")
    return train_tiny(tmp, str(faces)), faces


def one_error_line(err: str, verb: str) -> str:
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith(f"tailface {verb}: error: "), err[-2000:]
    assert "Traceback" not in err
    return errors[0]


# -- eval: the default protocols, --device, --no-progress ---------------------------------------------

def test_eval_of_a_synthetic_model_runs_the_synthetic_protocol_and_says_why(synthetic_model, tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["eval", str(synthetic_model), "--out", str(out), "--no-plots", "--device", "cpu",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "tailface eval: protocols synthetic (the default: the model was trained on the built-in synthetic " \
           "data; --protocols chooses)" in captured.err
    assert "features" not in captured.err  # --no-progress: no bar
    assert "synthetic" in json.loads((out / "metrics.json").read_text())


@pytest.fixture
def recorded(monkeypatch) -> dict:
    """``api.evaluate_checkpoint`` replaced by a recorder (the choice is tested, not the protocols)."""
    calls: dict = {}

    def evaluate_checkpoint(checkpoint, protocols, out_dir, **kwargs):
        calls.update(protocols=protocols, **kwargs)
        return {}

    monkeypatch.setattr(api, "evaluate_checkpoint", evaluate_checkpoint)
    return calls


def test_eval_of_a_face_model_defaults_to_the_prepared_real_face_protocols(face_model, tmp_path, monkeypatch,
                                                                           recorded, capsys):
    model, _ = face_model
    monkeypatch.setenv("TAILFACE_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "lfw").mkdir(parents=True)  # `tailface prepare lfw` writes $TAILFACE_DATA/lfw
    root = tmp_path / "faces_root"
    (root / "lfw").mkdir(parents=True)
    (root / "lfw" / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 1\n")
    argv = ["eval", str(model), "--out", str(tmp_path / "e"), "--faces-root", str(root), "--device", "cpu",
            "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert recorded["protocols"] == "lfw,megaface-proxy"
    assert recorded["device"] == "cpu" and recorded["progress"] is False
    assert f"protocols lfw,megaface-proxy (the default: a face model, and the aligned LFW set is prepared at " \
           f"{tmp_path / 'data' / 'lfw'}; blufr left out: no {root / 'blufr' / 'blufr_lfw_config.mat'}" in err
    (root / "blufr").mkdir()
    (root / "blufr" / "blufr_lfw_config.mat").write_bytes(b"")
    assert main(argv[:-3]) == 0  # without --device cpu --no-progress
    assert recorded["protocols"] == "blufr,lfw,megaface-proxy"
    assert recorded["device"] is None and recorded["progress"] is True  # --device auto: CUDA when available


def test_eval_of_a_face_model_without_prepared_lfw_says_how_to_prepare_it(face_model, tmp_path, monkeypatch,
                                                                          recorded, capsys):
    model, _ = face_model
    monkeypatch.setenv("TAILFACE_DATA", str(tmp_path / "nothing"))
    assert main(["eval", str(model), "--out", str(tmp_path / "e")]) == 0
    assert recorded["protocols"] == "synthetic"
    assert f"protocols synthetic (the default: no aligned LFW set at {tmp_path / 'nothing' / 'lfw'} for the " \
           "real-face protocols blufr, lfw, megaface-proxy: run `tailface prepare lfw` (or pass --lfw DIR)" \
           in capsys.readouterr().err


def test_an_onnx_model_is_a_face_model_and_a_checkpoint_without_a_training_record_is_not(tmp_path):
    (tmp_path / "lfw").mkdir()
    (tmp_path / "root" / "lfw").mkdir(parents=True)
    (tmp_path / "root" / "lfw" / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 1\n")
    assert default_protocols(tmp_path / "foreign.onnx", tmp_path / "lfw", tmp_path / "root")[0] == "lfw,megaface-proxy"
    torch.save({"model": {}, "meta": {"model_spec": {"name": "small"}}}, tmp_path / "old.pt")
    assert default_protocols(tmp_path / "old.pt", tmp_path / "lfw", tmp_path / "root") == \
        ("synthetic", "the checkpoint records no training set")


def test_eval_device_is_checked_by_argparse(synthetic_model, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(synthetic_model), "--device", "gpu"])
    assert exit_.value.code == 2
    assert "argument --device: expected auto, cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err


# -- shipped configs: data/NAME under $TAILFACE_DATA --------------------------------------------------

@pytest.fixture
def captured_run(monkeypatch) -> dict:
    """``run_experiment`` replaced by a recorder of the configuration it is given."""
    seen: dict = {}

    class Result:
        final, report = Path("final.pt"), None

    def run_experiment(cfg, out, command="run", **options):
        seen["cfg"] = cfg
        return Result()

    monkeypatch.setattr(tailface.experiment, "run_experiment", run_experiment)
    return seen


def test_a_shipped_celeba_config_reads_the_set_prepared_under_tailface_data(tmp_path, monkeypatch, captured_run):
    monkeypatch.setenv("TAILFACE_DATA", str(tmp_path / "d"))
    (tmp_path / "d" / "celeba-train").mkdir(parents=True)
    assert main(["train", "baselines/celeba/abcd", "--out", str(tmp_path / "o")]) == 0
    assert captured_run["cfg"].data.train == str(tmp_path / "d" / "celeba-train")
    assert main(["run", "method/celeba", "--out", str(tmp_path / "o2")]) == 0
    assert captured_run["cfg"].data.train == str(tmp_path / "d" / "celeba-train")
    assert main(["train", "baselines/celeba/abcd", "--out", str(tmp_path / "o3"), "--data", "synthetic"]) == 0
    assert captured_run["cfg"].data.train == "synthetic"  # --data wins
    mine = tmp_path / "mine.yaml"  # a user's config: a relative path is the user's, read from the working folder
    mine.write_text(yaml.safe_dump({**TINY_BASELINE, "data": {"train": "data/celeba-train"}}))
    assert main(["train", str(mine), "--out", str(tmp_path / "o4")]) == 0
    assert captured_run["cfg"].data.train == "data/celeba-train"


def test_train_no_progress_turns_the_bar_off(tmp_path, capsys):
    doc = {**TINY_BASELINE, "eval": {}, "train": {**TINY_TRAIN, "max_steps": 2, "progress": True}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "a")]) == 0
    assert "step/s]" in capsys.readouterr().err  # the bar
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "step/s]" not in capsys.readouterr().err
    assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["train"]["progress"] is False


@pytest.mark.parametrize("argv", [["train", "x.yaml"], ["run"], ["eval", "m.pt"], ["embed", "m.pt", "d", "o.npz"],
                                  ["prepare", "lfw"], ["align", "i", "l", "o"], ["pack", "d", "o.rec"],
                                  ["subset", "d", "o.rec"], ["reproduce", "table3"], ["study", "synthetic"],
                                  ["check", "d"]], ids=lambda a: a[0])
def test_no_progress_on_every_verb_that_shows_progress(argv):
    assert build_parser().parse_args([*argv, "--no-progress"]).no_progress is True


def test_no_progress_keeps_a_reproduce_cells_fingerprint(tmp_path):
    """``reproduce --no-progress`` sets train.progress: false in the cells; an archived cell stays reusable."""
    doc = cells.cell_config(cells.Profile.load("synthetic"), "abcd", 0, tmp_path)
    quiet = cells.merged(doc, {"train": {"progress": False}})
    assert quiet != doc and archive.fingerprint(quiet, tmp_path) == archive.fingerprint(doc, tmp_path)
    changed = cells.merged(doc, {"train": {"lr": 0.5}})
    assert archive.fingerprint(changed, tmp_path) != archive.fingerprint(doc, tmp_path)


# -- embed: OUT as named, as its help says --------------------------------------------------------------

def test_embed_writes_out_as_named_and_its_help_says_so(face_model, tmp_path, capsys):
    model, faces = face_model
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "OUT.npz" not in help_text and "written under exactly the name given (no suffix added" in help_text
    out = tmp_path / "feats"
    assert main(["embed", str(model), str(faces), str(out), "--device", "cpu", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {out}: 12 x 16 features") and "features:" not in captured.err
    assert len(load_features(out)["image_ids"]) == 12 and not out.with_suffix(".npz").exists()


# -- group thresholds: one spelling, the old one still accepted ------------------------------------------

def test_group_thresholds_have_one_spelling_and_the_old_one_means_the_same(face_model, capsys):
    model, faces = face_model
    tables = {}
    for name, flags in {"default": [], "thresholds": ["--thresholds", "21,10,4"], "old": ["--groups", "21", "10", "4"],
                        "low": ["--thresholds", "3,2,1"], "low-old": ["--groups", "3", "2", "1"]}.items():
        assert main(["norms", str(model), "--data", str(faces), *flags]) == 0
        tables[name] = capsys.readouterr().out
    assert tables["default"] == tables["thresholds"] == tables["old"]
    assert tables["low"] == tables["low-old"] != tables["default"]  # 4 images a class: A under 3,2,1, C under 21,10,4


# -- help, README, shipped configs -----------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["study", "reproduce"])
def test_help_prints_a_percent_sign_once(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    text = capsys.readouterr().out
    assert "95%" in text and "%%" not in text


def test_readme_installs_extras_from_the_clone():
    readme = (REPO / "README.md").read_text()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "pip install 'tailface[" not in readme  # tailface is not on the package index
    named = re.findall(r"pip install -e '\.\[(\w+)\]'", readme)
    assert {"onnx", "evidence", "test"} <= set(named) and set(named) <= set(extras)
    assert "CosFace" in readme


@pytest.mark.parametrize("folder", ["baselines", "baselines/celeba"])
def test_cosface_is_shipped_as_arcface_is(folder):
    configs = shipped_configs()
    cosface = ExperimentConfig.load(configs[f"{folder}/cosface"]).to_dict()
    arcface = ExperimentConfig.load(configs[f"{folder}/arcface"]).to_dict()
    assert cosface["head"]["name"] == "cosface" and cosface["head"]["m"] == 0.35
    assert {**cosface, "head": None} == {**arcface, "head": None}  # data, model, budget and evaluation: arcface's


# -- bad flags and missing prepared data: blamed on what is wrong, one line, exit 2 -------------------------

def shipped_config_without_its_prepared_set(tmp):
    return (["train", "baselines/celeba/abcd", "--out", str(tmp / "o")], {"TAILFACE_DATA": str(tmp / "data")},
            f"{tmp / 'data' / 'celeba-train'}: the prepared set celeba-train is not there (the shipped config "
            "baselines/celeba/abcd reads data.train: data/celeba-train, i.e. $TAILFACE_DATA/celeba-train, default "
            "./data/celeba-train); run `tailface prepare celeba-train` or pass `--data`")


def max_steps_not_positive(tmp):
    return ["train", "baselines/abcd", "--out", str(tmp / "o"), "--max-steps", "-1"], {}, \
        "--max-steps must be a positive integer, got -1"


def num_workers_negative(tmp):
    return ["run", "--out", str(tmp / "o"), "--num-workers", "-1"], {}, "--num-workers must be an integer >= 0, got -1"


def group_thresholds_given_twice(tmp):
    return (["norms", str(tmp / "final.pt"), "--thresholds", "21,10,4", "--groups", "21", "10", "4"], {},
            "give the group thresholds once: --thresholds A,B,C (--groups A B C is its old spelling)")


ROWS = [shipped_config_without_its_prepared_set, max_steps_not_positive, num_workers_negative,
        group_thresholds_given_twice]


@pytest.mark.parametrize("row", ROWS, ids=[r.__name__ for r in ROWS])
def test_bad_flag_or_missing_data_is_one_line_exit_2(row, tmp_path, monkeypatch, capsys):
    argv, env, expected = row(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = main(argv)
    message = one_error_line(capsys.readouterr().err, argv[0])
    assert code == 2 and expected in message, message
    assert ".yaml" not in message  # the flag is to blame, not a shipped config file
    assert not (tmp_path / "o").exists()  # stopped before any output
