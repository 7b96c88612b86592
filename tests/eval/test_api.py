import json

import numpy as np
import pytest

from tailface.cli.main import main as cli_main
from tailface.errors import ConfigError, DataError
from tailface.eval import api
from tailface.eval.synthetic import evaluate_synthetic, gallery_split
from tailface.paths import faces_root

ROOT = faces_root()
HAS_LFW_META = (ROOT / "blufr" / "blufr_lfw_config.mat").is_file() and (ROOT / "lfw" / "pairs.txt").is_file()


def test_parse_protocols():
    assert api.parse_protocols("blufr, lfw") == ["blufr", "lfw"]
    with pytest.raises(ConfigError, match="megaface-proxy"):
        api.parse_protocols("blufr,imagenet")


def test_identity_of():
    assert api.identity_of("Aaron_Peirsol/Aaron_Peirsol_0003.jpg") == "Aaron_Peirsol"
    assert api.identity_of("Abdullah_0001.jpg") == "Abdullah"


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
        api._lfw_faceset(tmp_path / "nowhere")


def test_cli_needs_exactly_one_input(capsys):
    assert cli_main(["eval"]) == 2
    assert "exactly one" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_LFW_META, reason=f"real BLUFR config / LFW pairs.txt absent under {ROOT}")
def test_lfw_protocols_on_random_features(tmp_path):
    from tailface.eval.blufr import load_blufr_config

    config = load_blufr_config(ROOT / "blufr" / "blufr_lfw_config.mat")
    ids = [f"{api.identity_of(n)}/{n}" for n in config.image_list]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(ids), 16)).astype(np.float32) + 2 * rng.standard_normal(
        (config.labels.max() + 1, 16)).astype(np.float32)[config.labels]
    metrics = api.evaluate_lfw_features(x, ids, ["blufr", "lfw", "megaface-proxy"], ROOT)
    assert 0 < metrics["blufr"]["report"]["vr_far_0.1%"]["mean"] < 1
    assert 0.5 < metrics["lfw"]["accuracy_mean"] <= 1
    mf = metrics["megaface-proxy"]
    assert mf["distractor_counts"] == [10, 100, 1000] and mf["n_distractors_available"] == 4069
    metrics = api._finish(metrics, tmp_path, plots=True)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["lfw"]["accuracy_mean"] == metrics["lfw"]["accuracy_mean"]
    assert all((tmp_path / name).is_file() for name in
               ("blufr_roc.png", "blufr_dir.png", "blufr_cmc.png", "lfw_roc.png", "megaface_proxy_cmc.png"))
