"""`tailface reproduce methods` and `tailface reproduce shallow` (issue 21) on the tiny synthetic
profile: the method table and the cells it adds, their configs, the shallow set (at most 2 images
per identity, every identity kept, built once per seed, its manifest named by the cells), the pages
from fake metrics, and one end-to-end run of two shallow cells (two steps each)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from tailface.configs import resolve_config
from tailface.data.groups import GroupThresholds
from tailface.data.training_set import open_data, open_pool
from tailface.errors import ConfigError
from tailface.evidence import cells, methods, regimes, tables
from tailface.evidence.cells import Profile
from tailface.evidence.methods import Method, Shipped
from tailface.evidence.reproduce import needed_models, perturbed_data, reproduce
from tailface.evidence.targets import get_target, target_names
from tailface.experiment import ExperimentConfig
from tailface.experiment.config import DataConfig
from tailface.yaml_config import read_yaml

OPTIONS = {"num_identities": 40, "image_size": 16, "max_images": 30}
TINY = {"family": "synthetic", "data": "synthetic",
        "overrides": {"data": {"options": OPTIONS, "groups": {"a": 21, "b": 10, "c": 4}},
                      "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
                      "train": {"max_steps": 2, "batch_size": 16, "progress": False, "num_workers": 0}}}
ROWS = ["abcd", "ab", "ours", "center-loss", "arcface", "arcface-ours", "logit-adjusted", "ldam-drw",
        "subcenter-arcface", "adaface", "sst", "subcenter-drop", "vpl"]


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("# a tiny test profile\n" + yaml.safe_dump(TINY))
    return Profile.load(str(path))


def touch_bases(root, seed, models=("ab", "abcd", "ab@shallow")):
    for model in models:
        path = cells.final_checkpoint(root, model, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def write_metrics(root, model, seed, vr, dir_):
    path = cells.metrics_path(root, model, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"vr_far_0.1%": {"mean": vr, "std": 0.01}, "dir_far_1%_rank1": {"mean": dir_, "std": 0.0}}
    path.write_text(json.dumps({"blufr": {"report": report}}))


# -- the table and the cells --------------------------------------------------------------------------

def test_both_targets_register_and_list_their_models():
    assert {"methods", "shallow"} <= set(target_names())
    assert list(get_target("methods").models) == ROWS == list(methods.MODELS)
    shallow = get_target("shallow")
    assert list(shallow.models) == [f"{m}@shallow" for m in ROWS] + ["abcd"]  # + the full-set ABCD (the cut's cost)
    assert set(shallow.models) <= set(cells.MODELS)
    assert set(methods.SHIPPED) == {"subcenter-arcface", "adaface", "sst", "subcenter-drop", "vpl"}
    assert cells.dependencies("ours@shallow") == ["ab@shallow"] == cells.dependencies("arcface-ours@shallow")
    assert cells.dependencies("adaface@shallow") == []
    assert cells.cell_kind("ours@shallow").name == "aggregate-and-disperse"
    order = needed_models(["shallow"])
    assert order.index("ab@shallow") < order.index("ours@shallow") and "ab" not in order
    assert tables.LABELS["subcenter-arcface"] == "Sub-center ArcFace" == tables.LABELS["subcenter-arcface@shallow"]
    assert tables.LABELS["ours"] == "Ours" and tables.LABELS["adaface"] == "AdaFace"


def test_every_row_is_claimed_against_abcd_and_ours():
    claims = {(c.a, c.b): c.text for c in get_target("methods").claims}
    for model in ROWS:
        assert (model, "abcd") in claims or model == "abcd"
        assert (model, "ours") in claims or model in ("ours", "abcd")  # ours against ABCD once: "ours > ABCD"
    assert claims[("arcface-ours", "arcface")] == "ArcFace + ours > ArcFace"  # the combination against its method
    assert claims[("adaface", "abcd")] == "AdaFace > ABCD" and claims[("ours", "abcd")] == "Ours > ABCD"
    assert len(claims) == (len(ROWS) - 1) + (len(ROWS) - 2) + 1
    shallow = {(c.a, c.b): c.text for c in get_target("shallow").claims}
    assert shallow[("subcenter-arcface@shallow", "ours@shallow")] == "Sub-center ArcFace > Ours"
    assert ("abcd", "abcd@shallow") in shallow


def test_the_cell_configs_build(profile, tmp_path):
    touch_bases(tmp_path, 1)
    for model in [*get_target("methods").models, *get_target("shallow").models]:
        doc = cells.cell_config(profile, model, 1, tmp_path)
        cfg = ExperimentConfig.from_dict(doc, model)
        assert cfg.seed == 1 and doc["name"] == f"{model}-seed1"
    for model, shipped in methods.SHIPPED.items():  # a new row is its shipped config of the profile's family
        doc = cells.cell_config(profile, model, 1, tmp_path)
        assert doc.get("head") == read_yaml(resolve_config(shipped.synthetic)).get("head")  # SST: no head block
    for model in ROWS:  # the shallow cell: the full-set cell on the shallow set, with the shallow groups
        doc, full = cells.cell_config(profile, f"{model}@shallow", 1, tmp_path), cells.cell_config(profile, model, 1,
                                                                                                    tmp_path)
        assert doc["data"]["train"] == str(regimes.data_dir(tmp_path, "shallow", 1))
        assert doc["data"]["groups"] == {"a": 3, "b": 2, "c": 1}
        assert {k: v for k, v in doc["data"].items() if k not in ("train", "groups")} == \
            {k: v for k, v in full["data"].items() if k not in ("train", "groups")}
        if "method" in doc:
            assert doc["method"].pop("base") == str(cells.final_checkpoint(tmp_path, "ab@shallow", 1))
            full["method"].pop("base")
        drop = ("name", "data")
        assert {k: v for k, v in doc.items() if k not in drop} == {k: v for k, v in full.items() if k not in drop}


def test_a_row_of_another_kind_starting_from_a_cell_is_one_entry(profile, tmp_path, monkeypatch):
    """What a row with ``Shipped(kind=..., base=...)`` gives (SST, the sub-center drop): the kind's
    block starts from the base cell of the same seed, and its shallow cell from the shallow base."""
    row = Method("example-kind", "Example", "-", "-", "-",
                 shipped=Shipped("method/celeba", "method/synthetic", kind="aggregate-and-disperse", base="abcd"))
    monkeypatch.setitem(methods.SHIPPED, row.model, row.shipped)
    for name in (row.model, f"{row.model}@shallow"):
        monkeypatch.setattr(cells, "MODELS", [*cells.MODELS, name])
        monkeypatch.setitem(cells.CELL_KINDS, name, row.shipped.kind)
    touch_bases(tmp_path, 2, ("abcd", "abcd@shallow"))
    assert cells.dependencies(row.model) == ["abcd"] and cells.dependencies(f"{row.model}@shallow") == ["abcd@shallow"]
    doc = cells.cell_config(profile, row.model, 2, tmp_path)
    assert doc["method"]["base"] == str(cells.final_checkpoint(tmp_path, "abcd", 2))
    shallow = cells.cell_config(profile, f"{row.model}@shallow", 2, tmp_path)
    assert shallow["method"]["base"] == str(cells.final_checkpoint(tmp_path, "abcd@shallow", 2))
    ExperimentConfig.from_dict(shallow, "example")


# -- the shallow set ------------------------------------------------------------------------------------

def test_the_shallow_set_keeps_every_identity_with_at_most_two_images(profile, tmp_path):
    folder = perturbed_data(profile, tmp_path, None, "ab@shallow", 0)
    assert folder == regimes.data_dir(tmp_path, "shallow", 0)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert perturbed_data(profile, tmp_path, None, "ours@shallow", 0) == folder  # built once per seed
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    source = open_data("synthetic", OPTIONS)
    for model in ("abcd@shallow", "ab@shallow"):  # the data the cells train on, opened as they open it
        data = DataConfig.from_block(cells.cell_config(profile, model, 0, tmp_path)["data"])
        pool = open_pool(data)
        counts = pool.class_counts()
        assert counts.max() == 2 and sorted(pool.class_names) == sorted(source.class_names)  # every identity
        assert len(pool) == int(np.minimum(source.class_counts(), 2).sum())
        assert set(pool.image_ids) <= set(source.image_ids)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["shallow"]["max"] == 2 and manifest["split"] is None and manifest["seed"] == 0
    record = regimes.record(tmp_path, "adaface@shallow", 0)
    assert record["manifest"] == "regimes/shallow/seed0/data/manifest.json" and len(record["manifest_sha256"]) == 64
    assert record["shallow"] == 2 and record["groups"] == {"a": 3, "b": 2, "c": 1}
    other = perturbed_data(profile, tmp_path, None, "ab@shallow", 1)  # the seed draws which two images
    assert (other / "perturbed.lst").read_text() != (folder / "perturbed.lst").read_text()
    deeper = regimes.Regime("shallow", "", shallow=3)  # a set cut otherwise is refused, never reused
    regimes.build(tmp_path / "b", deeper, 0, "synthetic", OPTIONS, GroupThresholds())
    with pytest.raises(ConfigError, match=r"manifest.json: the perturbed set of regime shallow seed 0 was built with "
                                          r"another shallow than this run needs"):
        perturbed_data(profile, tmp_path / "b", None, "ab@shallow", 0)


def test_the_other_regimes_keep_their_fingerprints():
    """A regime without a shallow cap records what it recorded before (its archived fingerprint holds)."""
    assert regimes.perturbation("ab@split", 0) == {"regime": "split", "split": (0.5, 0.3), "noise": None, "seed": 0,
                                                   "epochs_factor": 1}
    assert regimes.SHALLOW not in regimes.REGIMES and len(regimes.REGIME_MODELS) == 15


# -- the pages ---------------------------------------------------------------------------------------

def test_the_methods_page_from_fake_metrics(profile, tmp_path):
    for seed in (0, 1, 2):
        for i, model in enumerate(ROWS):
            i = i if i <= ROWS.index("adaface") else -i  # AdaFace the best, whatever rows follow it
            write_metrics(tmp_path, model, seed, 0.30 + 0.01 * i, 0.10 + 0.01 * i + 0.001 * seed)
        write_metrics(tmp_path, "arcface", seed, 0.20, 0.05 + 0.01 * seed)  # below ABCD, noisy
    reports = reproduce(["methods"], profile, 3, tmp_path, train=False)
    text = (tmp_path / "methods.md").read_text()
    assert "| Sub-center ArcFace | K = 3 sub-centres per class" in text and methods.HYPER_NOTE in text
    assert "Ours combined with a method: ArcFace + ours (ours combined with ArcFace)" in text
    assert "| AdaFace > ABCD | DIR@FAR=1% | +9.00 [+9.00, +9.00] (n=3) | holds |" in text
    best = "Best method by mean DIR@FAR=1% (among the rows other than ABCD, AB, ours and the combinations): AdaFace"
    assert best in text and "ours combined with it is not defined" in text
    data = reports["methods"].data
    assert data["best"] == "adaface" and data["best_with_ours"] is None
    assert "ArcFace" not in data["beats_abcd"] and "AdaFace" in data["beats_abcd"]
    assert data["methods"]["arcface-ours"]["combines"] == "arcface"
    assert json.loads((tmp_path / "methods.json").read_text())["best"] == "adaface"


def test_the_shallow_page_quotes_sst_and_describes_its_set(profile, tmp_path):
    perturbed_data(profile, tmp_path, None, "ab@shallow", 0)
    for i, model in enumerate(ROWS):
        write_metrics(tmp_path, f"{model}@shallow", 0, 0.2 + 0.01 * i, 0.1)
    write_metrics(tmp_path, "arcface@shallow", 0, 0.9, 0.9)
    reports = reproduce(["shallow"], profile, 1, tmp_path, train=False)
    text = (tmp_path / "shallow.md").read_text()
    assert "conventional training LFW 91.77 / AgeDB 73.90" in text and "99.38 / 93.60" in text
    counts = open_data("synthetic", OPTIONS).class_counts()
    assert f"{int(np.minimum(counts, 2).sum()):,} images; {int((counts >= 2).sum()):,} identities with 2 images" in text
    assert "seed 0: `regimes/shallow/seed0/data/manifest.json`" in text and "| ABCD | 20.00 (1 seed) |" in text
    data = reports["shallow"].data
    assert data["best"] == "arcface@shallow" and data["best_with_ours"] == "arcface-ours@shallow"
    assert data["shallow_set"]["groups"] == {"a": 3, "b": 2, "c": 1} and list(data["shallow_set"]["manifests"]) == [0]
    assert "full-set ABCD > shallow ABCD" in text


# -- end to end: two shallow cells, two steps each -------------------------------------------------------

def test_the_shallow_ab_and_ours_cells_train(profile, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "repro"
    reproduce(["shallow"], profile, 1, out, only=["ours@shallow"])
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["ab@shallow", "ours@shallow"]
    config = yaml.safe_load((cells.cell_dir(out, "ours@shallow", 0) / "config.yaml").read_text())
    assert config["data"]["train"] == str(regimes.data_dir(out, "shallow", 0))
    assert config["method"]["base"] == str(cells.final_checkpoint(out, "ab@shallow", 0))
    summary = json.loads((cells.cell_dir(out, "ours@shallow", 0) / "cluster" / "super_classes.json").read_text())
    assert set(summary["group_of_super"]) == {"C"}  # the 1-image identities are the tail, clustered
    record = json.loads((cells.cell_dir(out, "ab@shallow", 0) / "cell.json").read_text())["regime"]
    assert record["manifest"] == "regimes/shallow/seed0/data/manifest.json" and record["shallow"] == 2
    assert json.loads((out / "shallow.json").read_text())["cells"]["finished"] == 2
