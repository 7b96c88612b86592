"""The sub-center drop kind (``experiment/subcenter_drop.py``): the drop decision against a
hand-computed case (dominant sub-centres, angles, the threshold), ``dropped.csv`` and the summary
per group, the retraining set, the ``drop`` block's checks, and a tiny run of the whole kind (train
-> features -> drop -> retrain -> eval) whose drop is recomputed by a naive float64 loop, rerun
with every stage skipped and with a changed angle redoing only the drop."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from tailface.data import InMemoryFaceSet
from tailface.data.groups import GroupThresholds
from tailface.data.training_set import open_pool, training_set
from tailface.errors import ConfigError, DataError
from tailface.eval.features import extract_features, load_features
from tailface.experiment import ExperimentConfig, run_experiment
from tailface.experiment.stages import run_stages
from tailface.experiment.subcenter_drop import (
    DropConfig,
    DropDecision,
    DropStages,
    drop_decision,
    drop_summary,
    drop_warning,
    dropped_csv,
    read_dropped,
    retrain_set,
    retrain_spec,
)
from tailface.train import load_checkpoint, load_model


def _at(deg, scale=1.0):
    return [scale * math.cos(math.radians(deg)), scale * math.sin(math.radians(deg))]


def test_hand_computed_drop_decision():
    """Class 0's sub-centres at 0, 90, 180 degrees; its images at 5, 10, -20, 30 pick 0, at 74, 76,
    80 pick 1 (closer to 90), at 170 picks 2: the dominant is 0 (4 picks), the angles to it 5, 10,
    20, 30, 74, 76, 80, 170; at 75 degrees the last three and 76 go. Class 1's at 45, 135, 270:
    images at 130, 140, 200 pick 1; angles 5, 5, 65: none dropped at 75, the last at 60. Class 2 has
    no image (-1). Norms do not matter."""
    weight = torch.tensor([[_at(0, 2.0), _at(90), _at(180, 0.5)],
                           [_at(45), _at(135, 3.0), _at(270)],
                           [_at(0), _at(1), _at(2)]])
    degrees = [5, 10, -20, 30, 74, 76, 80, 170, 130, 140, 200]
    features = np.array([_at(d, 1 + i) for i, d in enumerate(degrees)])
    labels = np.array([0] * 8 + [1] * 3)
    got = drop_decision(weight, features, labels, 75.0)
    assert got.dominant.tolist() == [0, 1, -1]
    np.testing.assert_allclose(got.angle, [5, 10, 20, 30, 74, 76, 80, 170, 5, 5, 65], atol=1e-5)
    assert np.flatnonzero(got.dropped).tolist() == [5, 6, 7]
    assert np.flatnonzero(drop_decision(weight, features, labels, 60.0).dropped).tolist() == [4, 5, 6, 7, 10]


def _faces(counts=(21, 10, 4, 1)):
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.zeros((len(labels), 4, 4, 3), dtype=np.uint8)
    return InMemoryFaceSet(images, labels, class_names=[f"id{c}" for c in range(len(counts))],
                           image_ids=[f"id{y}/{i:03d}.jpg" for i, y in enumerate(labels)])


def test_dropped_csv_and_the_summary_per_group():
    """Groups A (21 images), B (10), C (4), D (1): three of A dropped, every image of C and of D (both
    classes emptied), none of B."""
    faces = _faces()
    dropped = np.zeros(len(faces), dtype=bool)
    dropped[[2, 7, 20]] = True
    dropped[31:36] = True
    angle = np.where(dropped, 80.0 + np.arange(len(faces)), 10.0)
    decision = DropDecision(np.zeros(4, dtype=np.int64), angle, dropped)
    rows = list(csv.reader(dropped_csv(faces, decision).splitlines()))
    assert rows[0] == ["image_id", "identity", "label", "angle"]
    assert rows[1:4] == [["id0/002.jpg", "id0", "0", "82.0000"], ["id0/007.jpg", "id0", "0", "87.0000"],
                         ["id0/020.jpg", "id0", "0", "100.0000"]]
    assert [r[1] for r in rows[4:]] == ["id2"] * 4 + ["id3"] and len(rows) == 1 + 8
    summary = drop_summary(faces.labels, dropped, 4, GroupThresholds(), 75.0)
    assert summary["groups"] == {
        "A": {"classes": 1, "images": 21, "dropped": 3, "dropped_share": 3 / 21, "classes_emptied": 0},
        "B": {"classes": 1, "images": 10, "dropped": 0, "dropped_share": 0.0, "classes_emptied": 0},
        "C": {"classes": 1, "images": 4, "dropped": 4, "dropped_share": 1.0, "classes_emptied": 1},
        "D": {"classes": 1, "images": 1, "dropped": 1, "dropped_share": 1.0, "classes_emptied": 1}}
    assert summary["all"] == {"classes": 4, "images": 36, "dropped": 8, "dropped_share": 8 / 36,
                              "classes_emptied": 2}
    assert drop_warning(summary) is None
    most = drop_summary(faces.labels, np.arange(36) < 24, 4, GroupThresholds(), 75.0)  # 24 of 36 dropped
    assert drop_warning(most).startswith("warning: 67% of the training set dropped")
    assert drop_warning(drop_summary(faces.labels, np.arange(36) < 18, 4, GroupThresholds(), 75.0)) is None  # half


def test_the_retraining_set_keeps_the_kept_images_and_renumbers_the_classes():
    faces = _faces()
    kept = np.array([0, 1, 21, 22, 35])  # two of A, two of B, none of C, D's one
    data = retrain_set(faces, kept)
    assert data.num_classes == 3 and list(data.class_names) == ["id0", "id1", "id3"]
    assert list(data.labels) == [0, 0, 1, 1, 2]
    assert list(data.image_ids) == [faces.image_ids[i] for i in kept]
    with pytest.raises(DataError, match="no image to retrain on"):
        retrain_set(faces, np.array([], dtype=np.int64))


TINY = {"name": "tiny-drop",
        "data": {"train": "synthetic", "options": {"num_identities": 30, "image_size": 16, "max_images": 20}},
        "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
        "head": {"name": "subcenter_arcface", "k": 3, "s": 8.0, "m": 0.2},
        "drop": {"angle": 85, "retrain": "arcface"},
        "train": {"epochs": 1, "batch_size": 16, "max_steps": 3, "progress": False, "seed": 0, "log_every": 1},
        "eval": {"protocols": ["synthetic"], "batch_size": 64}}


def test_the_drop_block_and_its_checks():
    cfg = ExperimentConfig.from_dict(TINY)
    assert cfg.kind.name == "subcenter-drop" and cfg.block("drop") == DropConfig(85.0, "arcface")
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["drop"] == {"angle": 85.0,
                                                                                            "retrain": "arcface"}
    assert ExperimentConfig.from_dict({**TINY, "drop": {}}).block("drop") == DropConfig(75.0, "arcface")
    assert cfg.kind.training_stages(cfg) == ["train", "retrain"]
    bad = [({"angle": 75, "thresh": 1}, "unknown key 'thresh'"), ({"angle": 0}, r"drop.angle must be .* \(0, 180\)"),
           ({"angle": 180}, "drop.angle"), ({"angle": "75"}, "drop.angle"), ({"angle": True}, "drop.angle"),
           ({"angle": float("nan")}, "drop.angle"), ({"retrain": "softmax"}, "drop.retrain must be one of")]
    for block, match in bad:
        with pytest.raises(ConfigError, match=match):
            ExperimentConfig.from_dict({**TINY, "drop": block})
    with pytest.raises(ConfigError, match="trains subcenter_arcface first, got 'arcface'"):
        ExperimentConfig.from_dict({**TINY, "head": {"name": "arcface"}})
    with pytest.raises(ConfigError, match="drop is a subcenter-drop block"):
        ExperimentConfig.from_dict({**TINY, "method": {}})
    # the retraining's head: plain ArcFace with the head block's s and m, the cosface head for a
    # cosface margin (its default m), or the head block itself
    assert retrain_spec(cfg.head, "arcface").to_block() == {"name": "arcface", "s": 8.0, "m": 0.2}
    cos = ExperimentConfig.from_dict({**TINY, "head": {"name": "subcenter_arcface", "margin": "cosface"}}).head
    assert retrain_spec(cos, "arcface").to_block() == {"name": "cosface", "s": 64.0, "m": 0.35}
    assert retrain_spec(cfg.head, "subcenter") == cfg.head


def naive_drop(weight, features, labels, angle):
    """Per image: the closest sub-centre of its class; per class: the one picked most (lowest on a
    tie); dropped when the angle to it exceeds ``angle`` degrees. Loops, float64."""
    w = weight.double().numpy()
    f = features.astype(np.float64)
    picks = {}
    for i, y in enumerate(labels):
        cos = [np.dot(f[i], w[y, k]) / np.linalg.norm(f[i]) / np.linalg.norm(w[y, k]) for k in range(w.shape[1])]
        picks.setdefault(int(y), []).append(int(np.argmax(cos)))
    dominant = {y: max(range(w.shape[1]), key=lambda k: (p.count(k), -k)) for y, p in picks.items()}
    out = []
    for i, y in enumerate(labels):
        c = np.dot(f[i], w[y, dominant[int(y)]]) / np.linalg.norm(f[i]) / np.linalg.norm(w[y, dominant[int(y)]])
        out.append(math.degrees(math.acos(min(1.0, max(-1.0, c)))) > angle)
    return np.array(out)


def test_a_tiny_run_of_the_kind(tmp_path, capsys):
    out = tmp_path / "run"
    result = run_experiment(ExperimentConfig.from_dict(TINY), out, "run")
    assert result.final == out / "retrain" / "final.pt" and result.metrics is not None
    feats = load_features(out / "drop" / "features.npz")
    model, meta = load_model(out / "train" / "final.pt")  # the trained backbone's features, no flip
    train_set = training_set(open_pool(ExperimentConfig.from_dict(TINY).data), ExperimentConfig.from_dict(TINY).data)
    np.testing.assert_allclose(feats["features"], extract_features(model, train_set, meta["image_size"], flip=False,
                                                                   device="cpu", progress=False), rtol=0, atol=1e-6)
    weight = load_checkpoint(out / "train" / "final.pt")["head"]["weight"]
    assert weight.shape[1] == 3
    want = naive_drop(weight, feats["features"], feats["labels"], 85.0)
    assert 0 < want.sum() < len(want)  # (the tiny model drops some, not all)
    kept = np.load(out / "drop" / "kept.npy")
    np.testing.assert_array_equal(kept, np.flatnonzero(~want))
    rows = read_dropped(out / "drop" / "dropped.csv")
    assert [r["image_id"] for r in rows] == [feats["image_ids"][i] for i in np.flatnonzero(want)]
    assert all(r["angle"] > 85.0 for r in rows)
    summary = (out / "drop" / "summary.md").read_text()
    assert f"| all | 30 | {len(want)} | {want.sum()} |" in summary
    retrained = load_checkpoint(result.final)
    assert retrained["head"]["weight"].dim() == 2  # plain ArcFace
    assert retrained["meta"]["head_spec"]["name"] == "arcface"
    assert retrained["meta"]["num_classes"] == len(np.unique(feats["labels"][kept]))
    assert (out / "eval" / "metrics.json").is_file()
    capsys.readouterr()
    # the same config again: every stage skipped
    run_experiment(ExperimentConfig.from_dict(TINY), out, "run")
    err = capsys.readouterr().err
    for stage in ("train", "features", "drop", "retrain"):
        assert f"run: {stage}: done" in err, (stage, err)
    # another angle: the features are reused, the drop is redone
    cfg = ExperimentConfig.from_dict({**TINY, "drop": {"angle": 95}})
    before = (out / "drop" / "features.npz").stat().st_mtime_ns
    run_stages(DropStages(cfg, out, open_pool(cfg.data), "run").stages()[:3], "run")  # (the runner's pool)
    err = capsys.readouterr().err
    assert "features: done" in err and "drop: inputs changed" in err
    assert (out / "drop" / "features.npz").stat().st_mtime_ns == before
    np.testing.assert_array_equal(np.load(out / "drop" / "kept.npy"),
                                  np.flatnonzero(~naive_drop(weight, feats["features"], feats["labels"], 95.0)))
