"""`tailface reproduce regimes` (issue 22, items 2 and 3) and `--archive`, on the tiny synthetic
profile: the regime table, the perturbed sets, the cells' layout, the page from fake metrics, the
split reunion, the archive. Training is replaced by a fake where a test checks only layout and
report logic; one test trains (two cells, two steps each)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy import stats as scipy_stats

from tailface.cli.main import main
from tailface.data.groups import GroupThresholds
from tailface.data.open import open_faceset
from tailface.errors import ConfigError
from tailface.evidence import archive, cells, regimes, tables
from tailface.evidence.archive import Archive, fingerprint
from tailface.evidence.cells import Profile
from tailface.evidence.reproduce import cell_fingerprint, needed_models, reproduce
from tailface.evidence.targets import get_target
from tailface.evidence.targets.regimes import claims_of, mean_interval

OPTIONS = {"num_identities": 40, "image_size": 16, "max_images": 30}
TINY = {"family": "synthetic", "data": "synthetic",
        "overrides": {"data": {"options": OPTIONS, "groups": {"a": 21, "b": 10, "c": 4}},
                      "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
                      "train": {"max_steps": 2, "progress": False, "num_workers": 0}}}
T = GroupThresholds()


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("# a tiny test profile\n" + yaml.safe_dump(TINY))
    return Profile.load(str(path))


def write_metrics(root, model, seed, vr, dir_):
    path = cells.metrics_path(root, model, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"vr_far_0.1%": {"mean": vr, "std": 0.01}, "dir_far_1%_rank1": {"mean": dir_, "std": 0.0}}
    path.write_text(json.dumps({"blufr": {"report": report}}))


@pytest.fixture
def fake_training(monkeypatch):
    """``run_experiment`` replaced: a cell writes an empty model, metrics from ``figures`` (model,
    seed, how many times it trained -> VR, DIR) and, for a method cell, a clustering that puts
    every tail class of its training set in one super class."""
    calls: list[tuple[str, int]] = []
    state = {"figures": lambda model, seed, n: (0.5, 0.25)}

    def run(cfg, out, command):
        model, seed = cfg.name.rsplit("-seed", 1)
        calls.append((model, int(seed)))
        kind = cells.cell_kind(model)
        (out / kind.final).parent.mkdir(parents=True, exist_ok=True)
        (out / kind.final).write_bytes(b"")
        vr, dir_ = state["figures"](model, int(seed), calls.count((model, int(seed))))
        path = out / kind.metrics
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"blufr": {"report": {"vr_far_0.1%": {"mean": vr, "std": 0.0},
                                                         "dir_far_1%_rank1": {"mean": dir_, "std": 0.0}}}}))
        if cfg.method is not None:
            faceset = open_faceset(cfg.data.train, **cfg.data.options)
            counts = faceset.class_counts()
            tail = [n for n, c in zip(faceset.class_names, counts) if c < T.b]
            (out / "cluster").mkdir(parents=True, exist_ok=True)
            (out / "cluster" / "super_classes.json").write_text(json.dumps(
                {"super_of_class_name": dict.fromkeys(tail, 0), "group_of_super": ["D"]}))

    monkeypatch.setattr("tailface.evidence.reproduce.run_experiment", run)
    return calls, state


# -- the regime table and the cells ----------------------------------------------------------------

def test_the_regime_table_and_the_cells_it_adds():
    table = {r.name: r for r in regimes.REGIMES}
    assert list(table) == ["clean", "split", "noise20", "noise40", "split+noise", "long"]
    assert (table["split"].split, table["split"].noise) == ((0.5, 0.3), None)
    assert (table["noise20"].noise, table["noise40"].noise) == ((0.2, 0.5), (0.4, 0.5))
    assert (table["split+noise"].split, table["split+noise"].noise) == ((0.5, 0.3), (0.2, 0.5))
    assert table["long"].epochs_factor == 3 and not table["long"].perturbed and not table["clean"].perturbed
    assert regimes.model_name("ab", "clean") == "ab" and regimes.model_name("ours", "split") == "ours@split"
    assert regimes.parse("abcd@noise40") == ("abcd", table["noise40"]) and regimes.parse("ours")[1].name == "clean"
    with pytest.raises(ConfigError, match="unknown regime 'noise99'"):
        regimes.parse("ab@noise99")
    assert len(regimes.REGIME_MODELS) == 15 and set(regimes.REGIME_MODELS) <= set(cells.MODELS)
    target = get_target("regimes")
    assert target.models[:3] == ("ab", "abcd", "ours") and len(target.models) == 18  # clean: the existing cells
    assert cells.dependencies("ours@split") == ["ab@split"] and cells.dependencies("ab@split") == []
    assert cells.dependencies("ours@long") == ["ab@long"] and cells.dependencies("abcd@noise20") == []
    assert cells.cell_kind("ours@split+noise").name == cells.cell_kind("ours").name
    order = needed_models(["regimes"])
    assert order.index("ab@split") < order.index("ours@split") and order.count("ab") == 1


def test_a_regime_cell_is_the_clean_model_on_its_perturbed_set(profile, tmp_path):
    for regime in ("split", "noise20", "split+noise"):
        for model in regimes.MODELS:
            name = regimes.model_name(model, regime)
            doc, clean = cells.cell_config(profile, name, 2, tmp_path), cells.cell_config(profile, model, 2, tmp_path)
            assert cells.cell_dir(tmp_path, name, 2) == tmp_path / "cells" / name / "seed2"
            assert doc["data"]["train"] == str(tmp_path / "regimes" / regime / "seed2" / "data")
            assert doc["eval"] == clean["eval"]  # the evaluation (LFW on the real profiles) is never perturbed
            assert {k: v for k, v in doc["data"].items() if k != "train"} == \
                {k: v for k, v in clean["data"].items() if k != "train"}
            if model == "ours":  # ours starts from the AB cell of the same regime and seed
                assert doc["method"]["base"] == str(cells.final_checkpoint(tmp_path, f"ab@{regime}", 2))
                doc["method"].pop("base"), clean["method"].pop("base")
            drop = ("name", "data")
            assert {k: v for k, v in doc.items() if k not in drop} == {k: v for k, v in clean.items() if k not in drop}


@pytest.mark.parametrize("name", ["synthetic", "cpu"])
def test_long_scales_every_epoch_count_and_milestone(name, tmp_path):
    profile = Profile.load(name)
    for model in regimes.MODELS:
        long = cells.cell_config(profile, f"{model}@long", 0, tmp_path)
        clean = cells.cell_config(profile, model, 0, tmp_path)
        assert long["data"] == clean["data"]  # the clean set
        assert long["train"]["epochs"] == 3 * clean["train"]["epochs"]
        assert long["train"]["milestones"] == [3 * m for m in clean["train"]["milestones"]]
        assert long["train"]["warmup_epochs"] == clean["train"]["warmup_epochs"]  # kept: it guards the first steps
        rest = {k: v for k, v in long["train"].items() if k not in ("epochs", "milestones")}
        assert rest == {k: v for k, v in clean["train"].items() if k not in ("epochs", "milestones")}
        if model == "ours":
            method, was = long["method"], clean["method"]
            assert method["budget"] == 3 * was["budget"] and method["base"].endswith("ab@long/seed0/train/final.pt")
            for stage in ("prototype_train", "dispersion_train"):
                assert method[stage]["milestones"] == [3 * m for m in was[stage]["milestones"]]
    doc = regimes.longer({"train": {"schedule": "step", "step_size": 4}}, 3)  # a train block without epochs
    assert doc["train"] == {"schedule": "step", "step_size": 12, "epochs": 30}  # TrainConfig's default 10, x3


# -- the perturbed sets ---------------------------------------------------------------------------

def test_the_perturbed_set_is_built_once_per_regime_and_seed_and_deterministic(tmp_path):
    split = regimes.BY_NAME["split+noise"]
    folder = regimes.build(tmp_path / "a", split, 0, "synthetic", OPTIONS, T)
    assert folder == tmp_path / "a" / "regimes" / "split+noise" / "seed0" / "data"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert set(stamps) == {"perturbed.lst", "manifest.json"}
    assert regimes.build(tmp_path / "a", split, 0, "synthetic", OPTIONS, T) == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # not rebuilt
    again = regimes.build(tmp_path / "b", split, 0, "synthetic", OPTIONS, T)  # another run folder: the same set
    for name in stamps:
        assert (again / name).read_bytes() == (folder / name).read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["split"]["share"] == 0.5 and manifest["noise"]["share"] == 0.2
    assert manifest["source"]["spec"] == "synthetic" and manifest["shallow"] is None
    other = regimes.build(tmp_path / "a", split, 1, "synthetic", OPTIONS, T)  # the perturbation seed is the cell seed
    assert (other / "perturbed.lst").read_text() != (folder / "perturbed.lst").read_text()
    perturbed = open_faceset(folder, **OPTIONS)
    assert any("~split" in n for n in perturbed.class_names) and len(perturbed) < 275  # open-set images left out
    changed = regimes.Regime("split+noise", "", split=(0.5, 0.5), noise=(0.2, 0.5))
    with pytest.raises(ConfigError, match=r"manifest.json: the perturbed set of regime split\+noise seed 0 was built "
                                          r"with another split than this run needs"):
        regimes.build(tmp_path / "a", changed, 0, "synthetic", OPTIONS, T)


def test_regime_cells_train_on_their_set_built_once(profile, tmp_path, fake_training, monkeypatch):
    calls, _ = fake_training
    built = []
    write = regimes.write_perturbed
    monkeypatch.setattr(regimes, "write_perturbed", lambda folder, *args: built.append(folder) or write(folder, *args))
    out = tmp_path / "repro"
    reproduce(["regimes"], profile, 2, out, only=["ours@split", "abcd@split"])
    assert built == [regimes.data_dir(out, "split", 0), regimes.data_dir(out, "split", 1)]  # once per seed
    assert sorted(calls) == sorted((m, s) for s in (0, 1) for m in ("ab@split", "abcd@split", "ours@split"))
    assert calls.index(("ab@split", 0)) < calls.index(("ours@split", 0))
    assert sorted(p.name for p in (out / "regimes").iterdir()) == ["split"]
    for seed in (0, 1):
        manifest = regimes.manifest_path(out, "split", seed)
        for model in ("ab@split", "abcd@split", "ours@split"):
            record = json.loads((cells.cell_dir(out, model, seed) / "cell.json").read_text())["regime"]
            assert record["manifest"] == f"regimes/split/seed{seed}/data/manifest.json"
            assert record["seed"] == seed and record["split"] == [0.5, 0.3] and len(record["manifest_sha256"]) == 64
        reunion = json.loads((cells.cell_dir(out, "ours@split", seed) / "split_reunion.json").read_text())
        assert reunion["base"] == "ab@split" and reunion["manifest"] == manifest.relative_to(out).as_posix()
        assert reunion["share"] == 1.0 and reunion["counted"] > 0  # the fake clustering: one super class
    text = (out / "regimes.md").read_text()
    assert "| split | 25.00 +- 0.00 (n=2) | 25.00 +- 0.00 (n=2) | 25.00 +- 0.00 (n=2) |" in text
    assert "## split: 30% of the images" in text and (out / "regimes.png").is_file()


# -- the page -------------------------------------------------------------------------------------

def test_the_page_claims_and_plot_from_fake_metrics(profile, tmp_path):
    for seed in (0, 1, 2):
        for regime in regimes.REGIMES:
            shift = {"clean": 0.0, "split": -0.02, "noise20": -0.03, "noise40": -0.05, "split+noise": -0.06,
                     "long": 0.01}[regime.name]
            write_metrics(tmp_path, regimes.model_name("ab", regime.name), seed, 0.40, 0.20 + 0.01 * seed)
            write_metrics(tmp_path, regimes.model_name("abcd", regime.name), seed, 0.45 + shift,
                          0.22 + shift + 0.02 * seed)
            write_metrics(tmp_path, regimes.model_name("ours", regime.name), seed, 0.46 + shift, 0.24 + shift)
    write_metrics(tmp_path, "ab@split", 1, 0.41, 0.21)  # a split AB that differs from the clean AB on one seed
    reproduce(["regimes"], profile, 3, tmp_path, train=False)
    text = (tmp_path / "regimes.md").read_text()
    assert "ab@noise40 repeats the clean AB, the same figures on seeds 0, 1, 2 (its claims" in text
    assert "ab@split repeats" not in text
    # noise40, AB - ABCD on DIR: 0.20 + 0.01 s - (0.17 + 0.02 s) = 3, 2, 1 points: mean 2, sd 1,
    # interval 2 +- 4.302653 / sqrt(3) = [-0.48, +4.48]
    assert "| noise40: AB > ABCD (the tail hurts) | DIR@FAR=1% | +2.00 [-0.48, +4.48] (n=3) | within noise |" in text
    assert "| split: ABCD > clean ABCD | VR@FAR=0.1% | -2.00 [-2.00, -2.00] (n=3) | reversed |" in text
    assert "| long: ours > clean AB | VR@FAR=0.1% | +7.00 [+7.00, +7.00] (n=3) | holds |" in text
    assert "| clean AB (reference) | 40.00 +- 0.00 (n=3) | 21.00 +- 1.00 (n=3) |" in text
    assert "| noise40 | 21.00 +- 1.00 (n=3) | 19.00 +- 2.00 (n=3) | 19.00 +- 0.00 (n=3) | within noise |" in text
    assert "![DIR@FAR=1% per regime and model, 95% intervals](regimes.png)" in text
    assert (tmp_path / "regimes.png").stat().st_size > 1000
    data = json.loads((tmp_path / "regimes.json").read_text())["regimes"]
    assert list(data) == [r.name for r in regimes.REGIMES]
    assert data["noise40"]["models"]["abcd@noise40"]["metrics"]["DIR@FAR=1%"]["mean"] == pytest.approx(0.19)
    assert list(data["clean"]["models"]) == ["ab", "abcd", "ours"]
    assert list(data["split"]["models"]) == ["ab@split", "abcd@split", "ours@split", "ab"]  # and the clean AB
    claims = {(c["claim"], c["metric"]): c for c in data["noise40"]["claims"]}
    tail = claims[("noise40: AB > ABCD (the tail hurts)", "DIR@FAR=1%")]
    assert tail["verdict"] == "within noise" and tail["low"] == pytest.approx(0.02 - 4.302653 * 0.01 / math.sqrt(3))
    assert [c.text for c in claims_of("clean")] == ["clean: AB > ABCD (the tail hurts)",
                                                    "clean: ours > ABCD (ours repairs)", "clean: ours > AB"]
    assert [(c.a, c.b) for c in claims_of("split")][3:] == [("abcd@split", "abcd"), ("ab@split", "ab"),
                                                            ("abcd@split", "ab"), ("ours@split", "ab")]
    assert data["split"]["reunion"] == {"base": "ab@split", "seeds": {}}  # no clustering: said so, not invented


def test_the_strongest_method_joins_the_map_with_its_repair_claims(profile, tmp_path, monkeypatch):
    monkeypatch.setattr(regimes, "MAPPED", (*regimes.MODELS, "adaface"))
    for seed in (0, 1, 2):
        for regime in regimes.REGIMES:
            for model, dir_ in (("ab", 0.20), ("abcd", 0.22 + 0.01 * seed), ("ours", 0.23),
                                ("adaface", 0.25 + 0.02 * seed)):
                write_metrics(tmp_path, regimes.model_name(model, regime.name), seed, 0.40, dir_)
    reproduce(["regimes"], profile, 3, tmp_path, train=False)
    text = (tmp_path / "regimes.md").read_text()
    assert "The strongest method of `tailface reproduce methods` (its best row by mean DIR@FAR=1% on the clean " \
           "set): AdaFace" in text
    assert "| regime | AB | ABCD | ours | AdaFace | AB > ABCD (the tail hurts) |" in text
    # AdaFace - ABCD on DIR: 3, 4, 5 points: mean 4, sd 1, interval 4 +- 4.302653 / sqrt(3)
    assert "| noise20: AdaFace > ABCD (AdaFace repairs) | DIR@FAR=1% | +4.00 [+1.52, +6.48] (n=3) | holds |" in text
    assert "| split: AdaFace > clean AB | DIR@FAR=1% |" in text
    data = json.loads((tmp_path / "regimes.json").read_text())
    assert data["repair"] == ["adaface"] and "adaface@long" in data["regimes"]["long"]["models"]
    assert [c.text for c in claims_of("clean", (*regimes.MODELS, "vpl"))][3:] == ["clean: VPL > ABCD (VPL repairs)"]


def test_the_strongest_method_is_the_archived_methods_pages_best():
    """``regimes.REPAIR`` names the best row of the archived methods page (docs/evidence), with the
    cells it starts from; before that page exists, nothing."""
    page = Path(__file__).resolve().parents[1] / "docs" / "evidence" / "reproduce-cpu" / "methods.json"
    if not page.is_file():
        assert regimes.REPAIR == ()
        return
    best = json.loads(page.read_text())["best"]
    assert regimes.REPAIR[:1] == (best,), f"{page} names {best} the best method: set regimes.REPAIR"
    for model in regimes.REGIME_MODELS:
        assert set(cells.dependencies(model)) <= set(cells.MODELS), model


def test_the_plot_interval_is_the_t_interval_of_the_mean():
    values = {0: 0.21, 1: 0.25, 2: 0.20, 3: 0.27}
    x = np.array(list(values.values()), dtype=np.float64)  # naive float64 reference
    half = scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    d = mean_interval(values)
    assert (d.n, d.mean, d.low, d.high) == pytest.approx((4, x.mean(), x.mean() - half, x.mean() + half))
    assert math.isnan(mean_interval({0: 0.3}).low) and mean_interval({}).n == 0


# -- item 3: the split reunion on the page --------------------------------------------------------

def test_the_reunion_figures_from_a_fake_clustering_and_manifest(profile, tmp_path):
    manifest = {"split": {"identities": [
        {"identity": "a", "images": 30, "moved": [{"identity": f"a~split{k}", "images": [f"a/{k}.png"]}
                                                  for k in (1, 2, 3)]}]}}
    # seed 0: all three in super class 0 (with x): reunited 3 of 3; chance with N = 5 classes in super
    # classes of 4 and 1, k = 2 siblings: 1 - (4/5 * 1/4 * 0/3 + 1/5 * 4/4 * 3/3) = 0.8
    # seed 1: a~split1 alone in super class 1 (with y), the two others in 0 (with x): reunited 2 of 3;
    # chance, N = 5 in 3 and 2: 1 - (3/5 * 2/4 * 1/3 + 2/5 * 3/4 * 2/3) = 0.7
    clusterings = [{"a~split1": 0, "a~split2": 0, "a~split3": 0, "x": 0, "y": 1},
                   {"a~split1": 1, "a~split2": 0, "a~split3": 0, "x": 0, "y": 1}]
    for seed, super_of in enumerate(clusterings):
        path = regimes.manifest_path(tmp_path, "split", seed)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(manifest))
        cell = cells.cell_dir(tmp_path, "ours@split", seed)
        (cell / "cluster").mkdir(parents=True)
        (cell / "cluster" / "super_classes.json").write_text(json.dumps(
            {"super_of_class_name": super_of, "group_of_super": ["D", "D"]}))
        write_metrics(tmp_path, "ours@split", seed, 0.4, 0.2)
    reproduce(["regimes"], profile, 2, tmp_path, train=False)
    reunion = json.loads((tmp_path / "regimes.json").read_text())["regimes"]["split"]["reunion"]
    assert reunion["seeds"]["0"]["reunited"] == 3 and reunion["seeds"]["1"]["reunited"] == 2
    assert [reunion["seeds"][s]["chance"] for s in "01"] == pytest.approx([0.8, 0.7])
    assert reunion["share"]["mean"] == pytest.approx(5 / 6) and reunion["chance"]["mean"] == pytest.approx(0.75)
    assert reunion["share_minus_chance"]["mean"] == pytest.approx(5 / 6 - 0.75) and reunion["base"] == "ab@split"
    text = (tmp_path / "regimes.md").read_text()
    assert "| 0 | 3 | 3 | 3 | 100.0 | 80.0 |" in text and "| 1 | 3 | 3 | 2 | 66.7 | 70.0 |" in text
    assert "clustered with the ab@split model's features" in text
    assert "(no finished ours cell yet)" in text  # split+noise: nothing there


# -- the archive ----------------------------------------------------------------------------------

def test_the_archive_keeps_small_records_and_the_pages_read_them(profile, tmp_path, fake_training, capsys):
    calls, _ = fake_training
    out, kept = tmp_path / "repro", tmp_path / "git" / "evidence"
    reproduce(["regimes"], profile, 1, out, only=["ours@split"], archive=kept)
    files = sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file())
    assert files == ["cells/ab@split/seed0/cell.json", "cells/ab@split/seed0/eval/metrics.json",
                     "cells/ours@split/seed0/cell.json", "cells/ours@split/seed0/eval/ours/metrics.json",
                     "cells/ours@split/seed0/split_reunion.json", "regimes/split/seed0/data/manifest.json"]
    for model in ("ab@split", "ours@split"):  # copies, with the configuration's fingerprint
        record = json.loads((kept / "cells" / model / "seed0" / "cell.json").read_text())
        assert record == json.loads((cells.cell_dir(out, model, 0) / "cell.json").read_text())
        assert len(record["config_sha256"]) == 64
    page = (out / "regimes.md").read_text().split("\n", 3)[3]
    shutil.rmtree(out)  # the run folder is gone (a new work session)
    reproduce(["regimes"], profile, 1, out, train=False, archive=kept)
    assert (out / "regimes.md").read_text().split("\n", 3)[3] == page  # the same page from the archive alone
    assert "--archive" in (out / "regimes.md").read_text().split("\n", 3)[2]
    assert main(["reproduce", "regimes", "--profile", str(tmp_path / "tiny.yaml"), "--out", str(out), "--only",
                 "ours@split", "--archive", str(kept)]) == 0
    assert len(calls) == 2 and not (out / "cells").exists()  # archived with the same config: nothing trained
    err = capsys.readouterr().err
    assert f"ab@split seed 0: archived ({kept / 'cells' / 'ab@split' / 'seed0'}), skipped" in err


def test_a_finished_cell_is_archived_when_skipped_and_the_fingerprint_ignores_the_folders(profile, tmp_path,
                                                                                       fake_training):
    calls, _ = fake_training
    out, kept = tmp_path / "repro", tmp_path / "kept"
    reproduce(["regimes"], profile, 1, out, only=["abcd@noise20"])  # trained before --archive was given
    assert not kept.exists()
    reproduce(["regimes"], profile, 1, out, only=["abcd@noise20"], archive=kept)
    assert len(calls) == 1 and (kept / "cells" / "abcd@noise20" / "seed0" / "eval" / "metrics.json").is_file()
    assert (kept / "regimes" / "noise20" / "seed0" / "data" / "manifest.json").is_file()
    here = cells.cell_config(profile, "ours@split", 0, tmp_path / "a")
    there = cells.cell_config(profile, "ours@split", 0, tmp_path / "elsewhere" / "b")
    assert fingerprint(here, tmp_path / "a") == fingerprint(there, tmp_path / "elsewhere" / "b")
    there["train"]["lr"] = 0.2
    assert fingerprint(here, tmp_path / "a") != fingerprint(there, tmp_path / "elsewhere" / "b")
    assert fingerprint(here, tmp_path / "a", {"split": [0.5, 0.3]}) != fingerprint(here, tmp_path / "a")


def test_an_archived_cell_with_another_configuration_is_refused(profile, tmp_path, capsys):
    kept, out = tmp_path / "kept", tmp_path / "o"
    write_metrics(kept, "ab", 0, 0.4, 0.2)
    record = kept / "cells" / "ab" / "seed0" / "cell.json"
    record.write_text(json.dumps({"config_sha256": "0" * 64}))  # as if the shipped config had been retuned since
    assert main(["reproduce", "table2", "--profile", str(tmp_path / "tiny.yaml"), "--out", str(out), "--only", "ab",
                 "--archive", str(kept)]) == 2
    now = cell_fingerprint(profile, out, "synthetic", None, "ab", 0)
    assert Archive(kept).record_path("ab", 0) == record
    assert capsys.readouterr().err == (
        f"tailface reproduce: error: {record}: ab seed 0 was archived with another configuration (config_sha256 "
        f"000000000000) than {out / 'cells' / 'ab' / 'seed0' / 'config.yaml'} has now ({now[:12]}); delete "
        f"{kept / 'cells' / 'ab' / 'seed0'} to train it again, or use another --archive\n")
    assert not (out / "cells").exists()
    record.write_text("{")
    assert main(["reproduce", "table2", "--profile", str(tmp_path / "tiny.yaml"), "--out", str(out), "--only", "ab",
                 "--archive", str(kept)]) == 2
    assert capsys.readouterr().err == (f"tailface reproduce: error: {record}: not a readable cell record (JSON); "
                                       f"restore it from git or delete {kept / 'cells' / 'ab' / 'seed0'}\n")


def test_an_archived_base_is_trained_again_for_its_dependent(profile, tmp_path, fake_training, capsys):
    calls, state = fake_training
    out, kept = tmp_path / "repro", tmp_path / "kept"
    reproduce(["regimes"], profile, 1, out, only=["ab@split"], archive=kept)
    archived = (kept / "cells" / "ab@split" / "seed0" / "eval" / "metrics.json").read_text()
    shutil.rmtree(out)
    reproduce(["regimes"], profile, 1, out, only=["ours@split"], archive=kept)  # ours needs ab's checkpoint
    assert calls == [("ab@split", 0), ("ab@split", 0), ("ours@split", 0)]
    err = capsys.readouterr().err
    assert "ab@split seed 0: archived, but ours@split starts from its checkpoint" in err and "WARNING" not in err
    shutil.rmtree(out)
    shutil.rmtree(kept / "cells" / "ours@split")
    state["figures"] = lambda model, seed, n: (0.5, 0.25 + 0.01 * n)  # a retrained cell whose figures moved
    reproduce(["regimes"], profile, 1, out, only=["ours@split"], archive=kept)
    err = capsys.readouterr().err
    where = kept / "cells" / "ab@split" / "seed0"
    assert f"ab@split seed 0: WARNING: its figures differ from the archived ones ({where}): DIR@FAR=1%: 28.0000 " \
           "vs 25.0000." in err
    assert (kept / "cells" / "ab@split" / "seed0" / "eval" / "metrics.json").read_text() == archived  # kept


def test_a_perturbed_set_built_with_another_plan_is_refused(profile, tmp_path, capsys):
    out = tmp_path / "o"
    changed = regimes.Regime("split", "", split=(0.5, 0.6))
    folder = regimes.build(out, changed, 0, "synthetic", OPTIONS, T)
    assert main(["reproduce", "regimes", "--profile", str(tmp_path / "tiny.yaml"), "--out", str(out), "--only",
                 "ab@split"]) == 2
    err = capsys.readouterr().err
    assert err == (f"tailface reproduce: error: {folder / 'manifest.json'}: the perturbed set of regime split seed 0 "
                   "was built with another split than this run needs ({'source': 'synthetic', 'seed': 0, 'thresholds': "
                   "{'a': 21, 'b': 10, 'c': 4}, 'split': [0.5, 0.3], 'noise': None}); delete "
                   f"{folder} to rebuild it, or use another --out\n")
    assert not (out / "cells").exists()  # refused before any cell trained


# -- end to end: two cells, two steps each ---------------------------------------------------------

def test_the_split_regime_end_to_end(profile, tmp_path):
    torch.set_num_threads(1)
    out, kept = tmp_path / "repro", tmp_path / "kept"
    reproduce(["regimes"], profile, 1, out, only=["ours@split"], archive=kept)
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["ab@split", "ours@split"]
    config = yaml.safe_load((cells.cell_dir(out, "ab@split", 0) / "config.yaml").read_text())
    assert config["data"]["train"] == str(regimes.data_dir(out, "split", 0)) and config["data"]["subset"] == "AB"
    assert not list(kept.rglob("*.pt"))  # never a checkpoint
    reunion = json.loads((kept / "cells" / "ours@split" / "seed0" / "split_reunion.json").read_text())
    assert reunion["fakes"] > 0 and 0 <= reunion["reunited"] <= reunion["counted"] <= reunion["fakes"]
    data = json.loads((out / "regimes.json").read_text())
    assert data["regimes"]["split"]["reunion"]["seeds"]["0"] == reunion
    assert data["regimes"]["split"]["models"]["ours@split"]["metrics"]["VR@FAR=0.1%"]["n"] == 1
    assert data["cells"]["finished"] == 2


def test_an_archived_metrics_file_leaves_out_the_curves_no_page_reads():
    doc = {"blufr": {"report": {"vr_far_0.1%": {"mean": 0.2, "std": 0.01}, "dir_far_1%_rank1": {"mean": 0.1}},
                     "trials": [{"openset": [1, 2]}],
                     "development": {"vr_far_0.1%": 0.3},
                     "openset_curve": {"far": [0.01], "rank": [1], "mean": [[0.5]], "std": [[0.1]],
                                       "mean_minus_std": [[0.4]]}},
           "lfw": {"accuracy": 0.9, "roc": {"far": [0.0, 1.0]}}, "megaface-proxy": {"rank1": [0.7]}}
    kept = archive.compact_metrics(doc)
    assert kept["archived_without"] == ["blufr.trials", "lfw.roc", "blufr.openset_curve.std",
                                        "blufr.openset_curve.mean_minus_std"]
    assert "trials" not in kept["blufr"] and "roc" not in kept["lfw"] and doc["blufr"]["trials"]  # a copy
    assert kept["blufr"]["openset_curve"] == {"far": [0.01], "rank": [1], "mean": [[0.5]]}  # Fig. 3 reads it
    for metric in [*tables.METRICS, tables.DEV]:
        assert metric.get(kept) == metric.get(doc)


def test_an_archive_written_before_compaction_is_compacted_once(tmp_path):
    doc = {"blufr": {"report": {}, "trials": [1]}, "lfw": {"roc": [0]}}
    path = tmp_path / "cells" / "ab" / "seed0" / "eval" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    assert archive.compact_archive(tmp_path) == [path]
    assert json.loads(path.read_text()) == archive.compact_metrics(doc)
    assert archive.compact_archive(tmp_path) == []  # already compact
