import json

import numpy as np
import pytest
import torch

from tailface.cli.main import main as cli_main
from tailface.errors import ConfigError, DataError
from tailface.eval import api
from tailface.eval.protocols import Features, parse_protocols
from tailface.eval.protocols.megaface_proxy import identity_of
from tailface.eval.protocols.sets import lfw_faceset
from tailface.eval.synthetic import evaluate_synthetic, gallery_split
from tailface.paths import faces_root

ROOT = faces_root()
HAS_LFW_META = (ROOT / "blufr" / "blufr_lfw_config.mat").is_file() and (ROOT / "lfw" / "pairs.txt").is_file()


def test_parse_protocols():
    assert parse_protocols("blufr, lfw") == ["blufr", "lfw"]
    with pytest.raises(ConfigError, match="megaface-proxy"):
        parse_protocols("blufr,imagenet")


def test_identity_of():
    assert identity_of("Aaron_Peirsol/Aaron_Peirsol_0003.jpg") == "Aaron_Peirsol"
    assert identity_of("Abdullah_0001.jpg") == "Abdullah"


def test_gallery_split_and_synthetic_protocol():
    labels = np.repeat(np.arange(6), 3)
    g, p = gallery_split(labels)
    assert g.tolist() == [0, 3, 6] and len(p) == 15 and not set(g) & set(p)
    rng = np.random.default_rng(0)
    x = np.eye(8)[labels] * 3 + 0.1 * rng.standard_normal((18, 8))
    r = evaluate_synthetic(x, labels)
    assert r["vr_far_0.1%"] == 1.0 and r["dir_far_1%_rank1"] == 1.0
    assert r["openset"]["n_genuine_probes"] == 6 and r["openset"]["n_impostor_probes"] == 9


def test_missing_aligned_lfw_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="tailface prepare lfw"):
        lfw_faceset(tmp_path / "nowhere")


def test_cli_needs_exactly_one_input(capsys):
    assert cli_main(["eval"]) == 2
    assert "exactly one" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_LFW_META, reason=f"real BLUFR config / LFW pairs.txt absent under {ROOT}")
def test_lfw_protocols_on_random_features(tmp_path):
    from tailface.eval.blufr import load_blufr_config

    config = load_blufr_config(ROOT / "blufr" / "blufr_lfw_config.mat")
    ids = [f"{identity_of(n)}/{n}" for n in config.image_list]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(ids), 16)).astype(np.float32) + 2 * rng.standard_normal(
        (config.labels.max() + 1, 16)).astype(np.float32)[config.labels]
    options = api.EvalOptions(faces_root=ROOT)
    metrics = api.evaluate_protocols(Features(x, ids, None, "random"), ["blufr", "lfw", "megaface-proxy"], options)
    assert 0 < metrics["blufr"]["report"]["vr_far_0.1%"]["mean"] < 1
    assert 0.5 < metrics["lfw"]["accuracy_mean"] <= 1
    mf = metrics["megaface-proxy"]
    assert mf["distractor_counts"] == [10, 100, 1000] and mf["n_distractors_available"] == 4069
    metrics = api._finish(metrics, tmp_path, plots=True)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["lfw"]["accuracy_mean"] == metrics["lfw"]["accuracy_mean"]
    assert all((tmp_path / name).is_file() for name in
               ("blufr_roc.png", "blufr_dir.png", "blufr_cmc.png", "lfw_roc.png", "megaface_proxy_cmc.png"))


def _fake_features_module(monkeypatch, store):
    """Fakes of tailface.eval.features' functions, patched where the evaluation looks them up: the
    api saves and loads features files, the embedder extracts."""
    import types

    from tailface.eval import embedder

    fake = types.ModuleType("tailface.eval.features")

    def save_features(path, features, image_ids, labels=None):
        np.savez(path, features=features, image_ids=np.array(image_ids), labels=labels)
        store.setdefault("saved", []).append(str(path))

    def load_features(path):
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def extract_features(model, faceset, image_size, batch_size, flip=True, **kw):
        store.setdefault("extracted", []).append(len(faceset))
        rng = np.random.default_rng(0)
        return (np.eye(faceset.num_classes)[faceset.labels] * 3
                + 0.1 * rng.standard_normal((len(faceset), faceset.num_classes))).astype(np.float32)

    fake.save_features, fake.load_features, fake.extract_features = save_features, load_features, extract_features
    monkeypatch.setattr(api, "save_features", save_features)
    monkeypatch.setattr(api, "load_features", load_features)
    monkeypatch.setattr(embedder, "extract_features", extract_features)
    return fake


def test_evaluate_features_synthetic(tmp_path, monkeypatch, capsys):
    fake = _fake_features_module(monkeypatch, {})
    labels = np.repeat(np.arange(6), 4)
    x = np.eye(8)[labels] * 3 + 0.1 * np.random.default_rng(0).standard_normal((24, 8))
    fake.save_features(tmp_path / "f.npz", x, [f"i{k}" for k in range(24)], labels)
    m = api.evaluate_features(tmp_path / "f.npz", "synthetic", tmp_path / "out", plots=False)
    assert m["synthetic"]["vr_far_1%"] == 1.0
    assert "VR@FAR=0.1%" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["synthetic"]["dir_far_1%_rank1"] == 1.0
    np.savez(tmp_path / "nolabels.npz", features=x, image_ids=np.array([f"i{k}" for k in range(24)]))
    with pytest.raises(Exception, match="needs labels"):
        api.evaluate_features(tmp_path / "nolabels.npz", "synthetic", tmp_path / "out", plots=False)


def test_evaluate_checkpoint_extracts_lfw_once(tmp_path, monkeypatch):
    from tailface.data.faceset import InMemoryFaceSet
    from tailface.eval import embedder
    from tailface.eval.protocols import sets

    store = {}
    _fake_features_module(monkeypatch, store)
    monkeypatch.setattr(embedder, "load_model", lambda path: (torch.nn.Identity(), {"image_size": [16, 16]}))
    checkpoint = tmp_path / "final.pt"
    checkpoint.write_bytes(b"x")
    with pytest.raises(DataError, match="tailface prepare lfw"):
        api.evaluate_checkpoint(checkpoint, "lfw", tmp_path / "out", lfw=tmp_path / "missing")
    # a fake aligned "LFW" of 3 people; a hand-made pairs.txt under a fake faces root
    names = ["Ann", "Bob", "Cy"]
    ids = [f"{n}/{n}_{k:04d}.jpg" for n in names for k in (1, 2)]
    faces = InMemoryFaceSet(np.zeros((6, 4, 4, 3), np.uint8), np.repeat(np.arange(3), 2), names, ids)
    monkeypatch.setattr(sets, "open_faceset", lambda spec, **kw: faces)
    (tmp_path / "lfwdir").mkdir()
    root = tmp_path / "faces"
    (root / "lfw").mkdir(parents=True)
    (root / "lfw" / "pairs.txt").write_text("2 1\nAnn 1 2\nBob 1 Cy 2\nBob 1 2\nAnn 1 Cy 1\n")
    for _ in range(2):
        m = api.evaluate_checkpoint(checkpoint, "lfw", tmp_path / "out", lfw=tmp_path / "lfwdir",
                                    faces_root=root, plots=False)
    assert store["extracted"] == [6] and len(store["saved"]) == 1   # cached the second time
    assert m["lfw"]["fold_accuracy"] == [1.0, 1.0]
