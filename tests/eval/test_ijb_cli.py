"""``tailface eval MODEL --protocols ijbc:PATH`` end to end on a synthetic release and a tiny model:
the loose crops aligned and cached, features extracted once for two pooling variants, the table,
metrics.json, the ROC plot and CSV, and figures equal to the naive reference on the same features
(which `tailface eval --features` reproduces)."""

import csv
import json

import numpy as np
import pytest
import torch
from tests.eval import ijb_naive as naive

from tailface.cli.main import main as cli_main
from tailface.data.ijb_aligned import AlignedIjb
from tailface.data.ijb_release import IjbRelease
from tailface.data.synthetic import synthetic_faceset
from tailface.eval.embedder import load_embedder
from tailface.eval.features import save_features
from tailface.eval.ijb_synthetic import write_synthetic_ijb
from tailface.train import TrainConfig, build_head, build_model, fit

FARS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ijbcli")
    root = tmp / "IJB_release" / "IJBC"
    write_synthetic_ijb(root, "ijbc", enrolled=3, unenrolled=2, image_size=40, seed=1)
    torch.manual_seed(0)
    data = synthetic_faceset(num_identities=8, image_size=16, seed=0, max_images=4)
    model = build_model("small", input_size=16, embedding_size=16, width=8)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.05, progress=False, max_steps=1)
    ckpt = fit(model, build_head("softmax", 16, data.num_classes), data, cfg, tmp / "run")
    return tmp, root, ckpt


def test_eval_cli_on_a_synthetic_release(setup, monkeypatch, capsys):
    tmp, root, ckpt = setup
    monkeypatch.setenv("TAILFACE_DATA", str(tmp / "data"))
    out = tmp / "ev"
    protocols = f"ijbc:{root.parent},ijbc+unitnorm+nodetector:{root.parent}"
    assert cli_main(["eval", str(ckpt), "--protocols", protocols, "--out", str(out), "--batch-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "1:1 TAR@FAR=1e-04 exact / nearest ROC point" in printed and "(arcface_torch default)" in printed
    assert "1:N TPIR@FPIR=1%/10%, merged, anchor (ijb_1n.py)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    default, variant = metrics[f"ijbc:{root.parent}"], metrics[f"ijbc+nodetector+unitnorm:{root.parent}"]
    assert default["pooling"]["default"] and not variant["pooling"]["detector_score"]
    assert variant["pooling"]["norm"] == "unit" and "arcface_torch" in default["pooling"]["description"]
    # the reference: the same model on the same aligned crops, then the naive float64 protocol
    release = IjbRelease.open("ijbc", root)
    faces = AlignedIjb(release, 16, progress=False)
    assert faces.aligned == 0  # the cache written by the CLI run
    x = load_embedder(ckpt).extract(faces, batch_size=32, progress=False)
    rel = naive.read_release(root, "ijbc")
    for m, options in ((default, {}), (variant, {"norm": "unit", "detector": False})):
        pooled = naive.pool(x, rel["scores"], rel["templates"], rel["medias"], **options)
        scores = naive.pair_scores(pooled, rel["pairs"])
        labels = np.array([y for _, _, y in rel["pairs"]])
        genuine, impostor = scores[labels == 1], scores[labels == 0]
        v = m["verification"]
        assert v["tar_exact"] == naive.tar_exact(genuine, impostor, FARS)
        fpr, tpr, _ = naive.roc(genuine, impostor)
        assert v["tar_nearest"] == naive.tar_nearest(fpr, tpr, FARS)
        merged = naive.search(pooled, {**rel["g1"], **rel["g2"]}, rel["probe"], [0.01, 0.1], [1, 5, 10], merged=True)
        assert m["identification"]["merged"]["rank"] == merged["rank"]
        assert m["identification"]["merged"]["exact"]["tpir"] == merged["exact"]
    rows = list(csv.reader(open(out / "ijbc_roc.csv")))
    assert rows[0] == ["fpr", "tpr", "threshold"] and len(rows) - 1 == default["verification"]["roc_points"]
    assert (out / "ijbc_roc.png").is_file() and (out / "ijbc+nodetector+unitnorm_roc.png").is_file()
    # a features file of the same images gives the same figures
    save_features(tmp / "f.npz", x, faces.image_ids)
    assert cli_main(["eval", "--features", str(tmp / "f.npz"), "--protocols", f"ijbc:{root}", "--out",
                     str(tmp / "ev2"), "--no-plots"]) == 0
    again = json.loads((tmp / "ev2" / "metrics.json").read_text())[f"ijbc:{root}"]
    assert again["verification"]["tar_exact"] == default["verification"]["tar_exact"]
    assert again["identification"] == default["identification"]


def test_missing_loose_crop_is_one_line_exit_2(setup, tmp_path, monkeypatch, capsys):
    _, root, ckpt = setup
    broken = tmp_path / "IJBC"
    write_synthetic_ijb(broken, "ijbc", enrolled=1, unenrolled=1, probe_templates=1, image_size=24)
    (broken / "loose_crop" / "3.jpg").unlink()
    monkeypatch.setenv("TAILFACE_DATA", str(tmp_path / "data"))
    assert cli_main(["eval", str(ckpt), "--protocols", f"ijbc:{broken}", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"tailface eval: error: {broken}/loose_crop/3.jpg: image file not found (listed in the release's " \
                  "meta files)"
