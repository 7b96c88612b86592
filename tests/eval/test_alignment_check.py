"""The alignment template through training, checkpoints, ONNX metadata and evaluation: recorded,
read back, overridden by --template, compared with the evaluation pack's (a warning naming both),
assumed arcface with one note when missing, and part of the feature cache's key."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tailface.cli.main import main as cli_main
from tailface.data.alignment_record import write_alignment
from tailface.data.faceset import InMemoryFaceSet
from tailface.data.preprocess import TAILFACE_PREPROCESSING, Preprocessing, read_metadata, with_overrides
from tailface.errors import ConfigError
from tailface.eval.alignment_check import AlignmentCheck, data_template, model_template
from tailface.eval.embedder import load_embedder
from tailface.train import TrainConfig, build_head, build_model, fit
from tailface.train.checkpoint import checkpoint_template, load_checkpoint

from .test_verification_suite import tiny_bin

SIZE = 16


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained (1 step) on a 'pack' whose alignment.json says dlib-chip."""
    tmp = tmp_path_factory.mktemp("dlib")
    pack = tmp / "pack"
    pack.mkdir()
    write_alignment(pack, "dlib-chip", 150)
    rng = np.random.default_rng(0)
    faces = InMemoryFaceSet(rng.integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8), np.arange(8) % 4,
                            source=str(pack))
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model, head = build_model("small", input_size=SIZE, embedding_size=8), build_head("softmax", 8, 4)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=0.01, progress=False, max_steps=1, device="cpu")
    return fit(model, head, faces.subset(np.arange(8), relabel=False), cfg, tmp / "run")


@pytest.fixture(scope="module")
def untagged(tmp_path_factory):
    """A checkpoint that records no template (as every checkpoint before issue 23)."""
    torch.manual_seed(1)
    model = build_model("small", input_size=SIZE, embedding_size=8)
    path = tmp_path_factory.mktemp("old") / "old.pt"
    torch.save({"model": model.state_dict(),
                "meta": {"model_spec": {"name": "small", "kwargs": {"input_size": SIZE, "embedding_size": 8}}}}, path)
    return path


@pytest.fixture
def folders(tmp_path):
    """Two verification folders: one recorded as arcface crops, one without a record."""
    arc, bare = tmp_path / "arc", tmp_path / "bare"
    tiny_bin(arc / "a.bin", 10, seed=4)
    write_alignment(arc, "arcface", 112)
    tiny_bin(bare / "b.bin", 10, seed=5)
    return arc, bare


def test_checkpoint_records_the_training_packs_template(trained, untagged):
    meta = load_checkpoint(trained)["meta"]
    assert meta["alignment_template"] == "dlib-chip" and checkpoint_template(meta) == "dlib-chip"
    assert checkpoint_template(load_checkpoint(untagged)["meta"]) is None
    assert load_embedder(trained, device="cpu").preprocessing.template == "dlib-chip"
    assert load_embedder(untagged, device="cpu").preprocessing.template is None
    assert load_embedder(trained, template="facenet-box", device="cpu").preprocessing.template == "facenet-box"
    with pytest.raises(ConfigError, match="known: arcface, dlib-chip, facenet-box"):
        load_embedder(trained, template="dlib", device="cpu")


def test_onnx_metadata_dict_round_trip():
    prep = Preprocessing((SIZE, SIZE), template="facenet-box")
    meta = prep.metadata(False)
    assert meta["tailface.template"] == "facenet-box" and "tailface.template" not in TAILFACE_PREPROCESSING.metadata()
    back = read_metadata(meta)
    assert back["template"] == "facenet-box"
    assert with_overrides(Preprocessing((1, 1)), back["size"], back["mean"], back["std"], back["channel_order"],
                          back["template"]) == prep
    assert read_metadata(TAILFACE_PREPROCESSING.metadata())["template"] is None


def test_onnx_export_carries_the_template(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    from tailface.deploy.onnx_export import export_onnx

    torch.set_num_threads(1)
    result = export_onnx(trained, tmp_path / "m.onnx", check=False)
    assert result.metadata["tailface.template"] == "dlib-chip"
    assert load_embedder(result.path, device="cpu").preprocessing.template == "dlib-chip"
    assert load_embedder(result.path, template="arcface", device="cpu").preprocessing.template == "arcface"


def test_the_check_names_both_and_notes_a_missing_record_once(tmp_path):
    said: list[str] = []
    check = AlignmentCheck(say=said.append)
    check.set_model(model_template("m.pt", None))
    assert said == []                                       # nothing to compare yet: nothing said
    bare = tmp_path / "bare"
    bare.mkdir()
    assert check.compare(str(bare), data_template(str(bare))) is None    # both assumed arcface
    check.compare(str(bare), data_template(str(bare)))
    assert said == ["tailface: note: m.pt records no alignment template; assuming arcface",
                    f"tailface: note: {bare} records no alignment template; assuming arcface"]
    write_alignment(bare, "dlib-chip", 150)
    text = check.compare(str(bare), data_template(str(bare)))
    assert text is not None and said[-1] == f"tailface: warning: {text}"
    assert text.startswith(f"the model was trained on arcface crops (m.pt records no alignment template) but {bare} "
                           f"holds dlib-chip crops (recorded in {bare / 'alignment.json'})")
    assert check.to_dict()["warnings"] == [text] and len(check.to_dict()["notes"]) == 2
    assert data_template(str(bare), "arcface").origin == "--data-template"


def test_eval_warns_when_the_models_template_differs_from_the_packs(trained, folders, tmp_path, capsys):
    arc, bare = folders
    torch.set_num_threads(1)
    assert cli_main(["eval", str(trained), "--protocols", f"verification:{arc},bin:{bare / 'b.bin'}",
                     "--out", str(tmp_path / "e"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("tailface: warning:")]
    assert len(warnings) == 2
    assert (f"the model was trained on dlib-chip crops (recorded in {trained}) but {arc} holds arcface crops "
            f"(recorded in {arc / 'alignment.json'})") in warnings[0]
    assert f"but {bare / 'b.bin'} holds arcface crops ({bare / 'b.bin'} records no alignment template)" in warnings[1]
    assert f"tailface: note: {bare / 'b.bin'} records no alignment template; assuming arcface" in err
    alignment = json.loads((tmp_path / "e" / "metrics.json").read_text())["alignment"]
    assert alignment["model"] == {"template": "dlib-chip", "from": f"recorded in {trained}", "assumed": False}
    assert alignment["data"][str(arc)]["template"] == "arcface" and len(alignment["warnings"]) == 2
    # the model evaluated on its own geometry: --template / --data-template say so, nothing warned
    assert cli_main(["eval", str(trained), "--protocols", f"bin:{bare / 'b.bin'}", "--data-template", "dlib-chip",
                     "--out", str(tmp_path / "f"), "--no-plots"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert cli_main(["eval", str(trained), "--protocols", f"verification:{arc}", "--template", "arcface",
                     "--out", str(tmp_path / "g"), "--no-plots"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert cli_main(["eval", str(trained), "--protocols", f"verification:{arc}", "--template", "dlib",
                     "--out", str(tmp_path / "h")]) == 2
    assert capsys.readouterr().err.strip() == ("tailface eval: error: unknown alignment template 'dlib'; known: "
                                               "arcface, dlib-chip, facenet-box")


def test_old_checkpoint_is_assumed_arcface_with_one_note(untagged, folders, tmp_path, capsys):
    arc, _ = folders
    tiny_bin(arc / "c.bin", 10, seed=6)
    torch.set_num_threads(1)
    assert cli_main(["eval", str(untagged), "--protocols", f"verification:{arc},bin:{arc / 'c.bin'}",
                     "--out", str(tmp_path / "e"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert err.count(f"tailface: note: {untagged} records no alignment template; assuming arcface") == 1
    assert "warning" not in err
    assert cli_main(["eval", str(untagged), "--out", str(tmp_path / "s"), "--no-plots"]) == 0   # synthetic only
    assert "note" not in capsys.readouterr().err


def test_embed_warns_naming_both(trained, tmp_path, capsys):
    data = tmp_path / "faces"
    for ident in ("a", "b"):
        (data / ident).mkdir(parents=True)
        Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8)).save(data / ident / "1.png")
    write_alignment(data, "facenet-box", 160)
    torch.set_num_threads(1)
    assert cli_main(["embed", str(trained), str(data), str(tmp_path / "f.npz"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert (f"tailface: warning: the model was trained on dlib-chip crops (recorded in {trained}) but {data} holds "
            f"facenet-box crops (recorded in {data / 'alignment.json'})") in err
    assert cli_main(["embed", str(trained), str(data), str(tmp_path / "g.npz"), "--template", "facenet-box",
                     "--device", "cpu"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert cli_main(["embed", str(trained), str(data), str(tmp_path / "h.npz"), "--data-template", "nope"]) == 2


def test_the_feature_cache_is_keyed_on_the_packs_template(untagged, tmp_path):
    """The LFW set's features are cached in OUT; re-aligning the pack (another alignment.json)
    must not read the old cache (the pack's fingerprint is part of the key: tests/robustness/test_fingerprints.py)."""
    from tailface.eval.api import evaluate_checkpoint
    from tailface.eval.protocols import Protocol, list_protocols, register_protocol

    if "test-lfw-rows" not in list_protocols():
        register_protocol(Protocol("test-lfw-rows", "lfw", lambda f, o: {"rows": len(f.features)},
                                   summary=lambda m: [("rows", str(m["rows"]))]))
    pack = tmp_path / "lfw"
    for ident in ("A", "B"):
        (pack / ident).mkdir(parents=True)
        Image.fromarray(np.full((SIZE, SIZE, 3), 60, np.uint8)).save(pack / ident / f"{ident}_0001.png")
    torch.set_num_threads(1)

    def cache_file(out):
        m = evaluate_checkpoint(untagged, ["test-lfw-rows"], tmp_path / out, lfw=pack, plots=False)
        assert m["test-lfw-rows"] == {"rows": 2}
        return m["lfw_features"]

    before = cache_file("o")
    assert Path(before).name.startswith("lfw_features_") and Path(before).is_file()
    write_alignment(pack, "dlib-chip", 150)
    chips = cache_file("o")
    assert chips != before
    write_alignment(pack, "arcface", 112)
    assert cache_file("o") not in (before, chips)
    m = evaluate_checkpoint(untagged, ["test-lfw-rows"], tmp_path / "o", lfw=pack, plots=False, template="dlib-chip")
    assert m["lfw_features"] not in (before, chips)
