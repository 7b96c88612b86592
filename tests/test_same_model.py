"""One model per seed (issue 21, item 6): a `tailface reproduce` cell against the shipped config its
model comes from, at the same seed: equal configs up to the documented differences
(evidence/same_model.py), and on the built-in data (a few steps) bit-identical weights."""

from __future__ import annotations

import pytest
import torch
import yaml

from tailface.evidence import cells, same_model
from tailface.evidence.cells import Profile
from tailface.experiment import ExperimentConfig, run_experiment
from tailface.train.checkpoint import load_checkpoint

SEED = 7  # a seed the campaign never used, as in the issue
TINY = {"data": {"options": {"num_identities": 40, "image_size": 16, "max_images": 30}},
        "model": {"name": "small", "input_size": 16, "embedding_size": 16, "width": 8},
        "train": {"max_steps": 3, "progress": False, "num_workers": 0}, "eval": {"protocols": []}}


def touch_bases(root, seed):
    """Empty base checkpoints, so that a method cell's config (which names its base) validates."""
    for model in ("ab", "abcd"):
        path = cells.final_checkpoint(root, model, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.mark.parametrize("profile_name", ["synthetic", "cpu"])
def test_a_cell_is_its_shipped_config_at_the_same_seed_up_to_the_documented_differences(profile_name, tmp_path):
    profile = Profile.load(profile_name)
    touch_bases(tmp_path, SEED)
    compared = []
    for model in same_model.SHIPPED_OF:
        if same_model.shipped_config(profile, model, SEED) is None:
            continue
        found = same_model.differences(profile, model, SEED, tmp_path)
        assert set(found) == {d.path for d in same_model.expected(model, profile.family)}, model
        compared.append(model)
    assert {"ab", "abcd", "ours", "arcface", "subcenter-arcface", "adaface"} <= set(compared)
    ab = same_model.differences(profile, "ab", SEED, tmp_path)
    assert ab["name"] == (f"ab-seed{SEED}", None)  # the label; the seed itself is no difference
    if profile.family == "celeba":
        assert "arcface-ours" in compared and ab["data.train"][1] == "data/celeba-train"
        assert not any(d.matters for d in same_model.expected("ab", "celeba"))
        assert [d.path for d in same_model.expected("arcface-ours", "celeba") if d.matters] == ["method.base"]


def test_a_difference_in_anything_else_is_found(tmp_path):
    profile = Profile.load("synthetic")
    doc = same_model.shipped_config(profile, "ab", SEED)
    assert doc is not None and doc["train"]["seed"] == SEED
    retuned = Profile("retuned", "synthetic", "synthetic", {"train": {"lr": 0.2}}, "")
    found = same_model.differences(retuned, "ab", SEED, tmp_path)  # both get the override: nothing new differs
    assert set(found) == {"name"}
    assert same_model.flat({"train": {"lr": 0.1}, "name": "x"}) == {"train.lr": 0.1, "name": "x"}


def weights(path):
    ckpt = load_checkpoint(path)
    return {f"{part}.{k}": v for part in ("model", "head") for k, v in ckpt[part].items() if torch.is_tensor(v)}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_the_cells_and_the_shipped_configs_train_bit_identical_weights(tmp_path):
    """AB cell = shipped AB baseline = the shipped method's base stage (with a mid-epoch checkpoint,
    as method/celeba.yaml writes every 200 steps); ours cell = the shipped method's dispersion."""
    torch.set_num_threads(1)
    profile_file = tmp_path / "tiny.yaml"
    profile_file.write_text("# tiny synthetic profile\n" + yaml.safe_dump({"family": "synthetic", "data": "synthetic",
                                                                            "overrides": TINY}))
    profile = Profile.load(str(profile_file))
    root = tmp_path / "repro"

    def run(doc, out, name):
        return run_experiment(ExperimentConfig.from_dict(doc, name), out, "test")

    ab_cell = run(cells.cell_config(profile, "ab", SEED, root), cells.cell_dir(root, "ab", SEED), "ab cell")
    ab_shipped = run(same_model.shipped_config(profile, "ab", SEED), tmp_path / "ab", "baselines/ab")
    assert_same_weights(ab_cell.final, ab_shipped.final)

    ours_cell = run(cells.cell_config(profile, "ours", SEED, root), cells.cell_dir(root, "ours", SEED), "ours cell")
    method = same_model.shipped_config(profile, "ours", SEED)
    method["train"]["checkpoint_every"] = 2  # a last.pt in the middle of the first epoch
    shipped = run(method, tmp_path / "method", "method/synthetic")
    assert_same_weights(ab_cell.final, tmp_path / "method" / "base" / "final.pt")
    assert_same_weights(ours_cell.final, shipped.final)
    assert (tmp_path / "method" / "abcd" / "final.pt").is_file()  # the stage after dispersion ran, and changed nothing
    assert yaml.safe_load((tmp_path / "method" / "config.yaml").read_text())["train"]["seed"] == SEED
