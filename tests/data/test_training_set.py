"""One training-set draw (tailface.data.training_set): its random streams, the draws of the code
it replaced (hard-coded below, computed by that code), and ``tailface subset`` selecting exactly
the images a config's ``data:`` block trains on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import tailface.data.training_set as ts
from tailface.cli.main import main
from tailface.data.faceset import InMemoryFaceSet
from tailface.data.groups import GroupThresholds
from tailface.data.open import open_faceset
from tailface.data.recordio import write_recordio
from tailface.data.subsets import long_tail_subset, uniform_subset
from tailface.data.training_set import (
    group_classes,
    group_rng,
    heldout_classes,
    holdout_rng,
    open_data,
    open_heldout,
    open_pool,
    open_training_set,
    sample_rng,
    select_groups,
)
from tailface.errors import ConfigError
from tailface.experiment.config import DataConfig

# 36 classes: A 0-4 (40..21 images), B 5-10 (18..10), C 11-20 (9..4), D 21-35 (3..1); 308 images
COUNTS = np.array([40, 33, 28, 24, 21, 18, 15, 13, 12, 11, 10, 9, 8, 7, 6, 6, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 2,
                   1, 1, 1, 1, 1, 1, 1, 1])
LABELS = np.repeat(np.arange(len(COUNTS)), COUNTS)
TH = GroupThresholds()


def in_memory() -> InMemoryFaceSet:
    return InMemoryFaceSet(np.zeros((len(LABELS), 8, 8, 3), np.uint8), LABELS,
                           class_names=[f"id{c:02d}" for c in range(len(COUNTS))],
                           image_ids=[f"img{i:03d}.png" for i in range(len(LABELS))])


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("all") / "all.rec"
    write_recordio(in_memory(), path, progress=False)
    return str(path)


def original(faceset) -> list[int]:
    """The images of ``faceset`` as indices of LABELS (from their ids)."""
    return sorted(int(i[3:6]) for i in faceset.image_ids)


# -- the streams ----------------------------------------------------------------------------------

def test_each_stream_is_the_documented_generator():
    doc = ts.__doc__
    assert doc is not None
    for seed in (0, 3, 12345):
        assert holdout_rng(seed).integers(1 << 30, size=4).tolist() == \
            np.random.default_rng([seed, 7]).integers(1 << 30, size=4).tolist()
        assert sample_rng(seed).integers(1 << 30, size=4).tolist() == \
            np.random.default_rng(seed).integers(1 << 30, size=4).tolist()
        for g in "ABCD":
            assert group_rng(seed, g).integers(1 << 30, size=4).tolist() == \
                np.random.default_rng([seed, ord(g)]).integers(1 << 30, size=4).tolist()
    # the table of streams in the module doc names each one
    for line in ("default_rng([holdout.seed, 7])", "default_rng(sample.seed)", "default_rng([subset_seed, ord(G)])"):
        assert line in doc, line
    # and the streams differ from each other for one seed
    firsts = {tuple(r.integers(1 << 30, size=3)) for r in (holdout_rng(1), sample_rng(1), group_rng(1, "C"))}
    assert len(firsts) == 3


def test_draws_are_deterministic(rec):
    data = DataConfig(train=rec, subset="AB", tail_share={"C": 0.5, "D": 0.5}, subset_seed=4,
                      sample={"kind": "long-tail", "identities": 24, "images": 150, "seed": 1},
                      holdout={"fraction": 0.2, "seed": 2})
    assert original(open_training_set(data)) == original(open_training_set(data))
    assert original(open_heldout(data)) == original(open_heldout(data))
    changes = ({"subset_seed": 5}, {"sample": {**data.sample, "seed": 2}}, {"holdout": {**data.holdout, "seed": 3}})
    for change in changes:
        other = dataclasses.replace(data, **change)
        assert original(open_training_set(other)) != original(open_training_set(data)), change


# -- the draws of the code this module replaced (DataConfig.open / open_heldout, select_subset) --

def test_holdout_draw_is_unchanged(rec):
    assert heldout_classes(open_data(rec), {"fraction": 0.25, "seed": 3}).tolist() == [5, 11, 13, 15, 18, 23, 24]
    held = open_heldout(DataConfig(train=rec, holdout={"fraction": 0.25, "seed": 3}))
    assert sorted(held.class_names) == ["id05", "id11", "id13", "id15", "id18", "id23", "id24"]
    syn = DataConfig(train="synthetic", options={"num_identities": 40, "image_size": 16, "max_images": 30},
                     holdout={"fraction": 0.2, "seed": 0, "min_images": 2})
    held, pool = open_heldout(syn), open_pool(syn)
    assert sorted(held.class_names) == ["syn00001", "syn00006", "syn00016", "syn00019", "syn00021", "syn00023"]
    assert (len(held), len(pool), pool.num_classes) == (54, 221, 34)


def test_sample_draws_are_unchanged():
    assert uniform_subset(LABELS, 5, 23, sample_rng(4)).tolist() == [
        226, 227, 228, 230, 232, 255, 256, 257, 259, 260, 261, 262, 263, 264, 265, 275, 276, 277, 278, 279, 280,
        281, 282]
    assert long_tail_subset(LABELS, 6, 40, sample_rng(2)).tolist() == [
        73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 87, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 103,
        112, 115, 116, 131, 133, 134, 137, 139, 141, 145, 197, 198, 256, 301]
    assert long_tail_subset(LABELS, 6, 40, sample_rng(2), max_per_class=9).tolist() == [
        42, 46, 49, 51, 56, 61, 63, 69, 70, 76, 78, 82, 83, 88, 89, 90, 95, 96, 215, 216, 217, 219, 220, 221, 222,
        223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 237, 238, 239, 302]


def test_group_share_draw_is_unchanged():
    ab = select_groups(in_memory(), "AB", TH, {"C": 0.5, "D": 0.25}, seed=5)
    assert sorted(ab.class_names) == [f"id{c:02d}" for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 16, 20,
                                                               21, 22, 30, 34)]
    a = select_groups(in_memory(), "A", TH, {"B": 0.4, "C": 0.5}, seed=0)
    assert sorted(a.class_names) == [f"id{c:02d}" for c in (0, 1, 2, 3, 4, 6, 8, 11, 12, 13, 16, 18)]


def test_a_whole_config_draw_is_unchanged(rec):
    data = DataConfig(train=rec, subset="AB", tail_share={"C": 0.5, "D": 0.5}, subset_seed=1,
                      sample={"kind": "long-tail", "identities": 10, "images": 60, "seed": 2},
                      holdout={"fraction": 0.25, "seed": 3})
    pool = [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67,
            68, 69, 72, 83, 84, 87, 89, 92, 100, 102, 103, 107, 108, 110, 112, 116, 118, 121, 123, 124, 125, 134,
            137, 139, 182, 184, 189, 201, 202, 205, 222, 285, 294, 295]
    dropped = {83, 84, 87, 89, 92, 100, 182, 184, 189, 205, 222}  # the pool's C and D classes not drawn
    assert original(open_pool(data)) == pool
    assert original(open_training_set(data)) == sorted(set(pool) - dropped)
    uniform = DataConfig(train=rec, sample={"kind": "uniform", "identities": 6, "images": 40, "seed": 1})
    assert original(open_pool(uniform)) == [
        79, 83, 84, 92, 94, 99, 151, 153, 155, 156, 158, 160, 162, 164, 166, 167, 168, 170, 173, 177, 204, 206, 208,
        209, 210, 212, 214, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254]


# -- tailface subset == the config's data block -------------------------------------------------

CASES = {
    "groups+share": (["--groups", "AB", "--share", "C=0.5,D=0.5", "--seed", "1"],
                     {"subset": "AB", "tail_share": {"C": 0.5, "D": 0.5}, "subset_seed": 1}),
    "groups": (["--groups", "ABC", "--seed", "7"], {"subset": "ABC", "subset_seed": 7}),
    "uniform": (["--uniform", "--num-identities", "6", "--num-images", "40", "--seed", "1"],
                {"sample": {"kind": "uniform", "identities": 6, "images": 40, "seed": 1}}),
    "long-tail": (["--long-tail", "--num-identities", "10", "--num-images", "60", "--seed", "2"],
                  {"sample": {"kind": "long-tail", "identities": 10, "images": 60, "seed": 2}}),
    "everything": (["--holdout", "0.25", "--holdout-seed", "3", "--long-tail", "--num-identities", "10",
                    "--num-images", "60", "--groups", "AB", "--share", "C=0.5,D=0.5", "--seed", "2"],
                   {"holdout": {"fraction": 0.25, "seed": 3}, "subset": "AB", "tail_share": {"C": 0.5, "D": 0.5},
                    "subset_seed": 2, "sample": {"kind": "long-tail", "identities": 10, "images": 60, "seed": 2}}),
    "holdout": (["--holdout", "0.3"], {"holdout": {"fraction": 0.3}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_subset_selects_what_the_config_trains_on(rec, tmp_path, case, capsys):
    flags, block = CASES[case]
    out = tmp_path / case / "train.rec"
    assert main(["subset", rec, str(out), "--no-progress", *flags]) == 0, capsys.readouterr().err
    written = open_faceset(out)
    config = open_training_set(DataConfig.from_block({"train": rec, **block}))
    assert original(written) == original(config)
    assert sorted(written.class_names) == sorted(config.class_names)
    assert 0 < len(written) < len(LABELS)


def test_identities_per_group_use_the_share_stream():
    counts = np.bincount(LABELS)
    for seed in range(5):  # C has 10 classes: a share of 0.5 is 5 of them
        by_share = group_classes(counts, "AB", TH, {"C": 0.5}, seed)
        by_number = group_classes(counts, "ABC", TH, seed=seed, identities={"C": 5})
        np.testing.assert_array_equal(by_share, by_number)


# -- group compositions (formerly data.subsets.composition_subset) --------------------------------

SMALL = np.array([30, 25, 15, 10, 9, 5, 4, 3, 2, 1, 1])  # A 0-1, B 2-3, C 4-6, D 7-10


def test_groups_keep_whole_groups():
    assert group_classes(SMALL, "AB", TH).tolist() == [0, 1, 2, 3]
    assert group_classes(SMALL, "abcd", TH).tolist() == list(range(len(SMALL)))
    assert group_classes(SMALL, "D", TH).tolist() == [7, 8, 9, 10]
    faceset = in_memory()
    assert select_groups(faceset, "ABCD", TH) is faceset


def test_identities_per_group_are_random_but_seeded():
    picks = [group_classes(SMALL, "ACD", TH, seed=s, identities={"C": 2, "D": 1}) for s in range(8)]
    for cls in map(set, picks):
        assert {0, 1} <= cls and len(cls & {4, 5, 6}) == 2 and len(cls & {7, 8, 9, 10}) == 1
        assert not cls & {2, 3}
    np.testing.assert_array_equal(picks[0], group_classes(SMALL, "ACD", TH, seed=0, identities={"C": 2, "D": 1}))
    assert len({tuple(p) for p in picks}) > 1


def test_bad_compositions_are_config_errors():
    with pytest.raises(ConfigError, match="letters among ABCD"):
        group_classes(SMALL, "AE", TH)
    with pytest.raises(ConfigError, match="not among the groups kept"):
        group_classes(SMALL, "AB", TH, identities={"C": 1})
    with pytest.raises(ConfigError, match="has 2 identities, 3 requested"):
        group_classes(SMALL, "A", TH, identities={"A": 3})
    with pytest.raises(ConfigError, match="kept whole"):
        group_classes(SMALL, "AB", TH, {"B": 0.5})


def test_cli_flag_errors(rec, tmp_path, capsys):
    def err(*flags) -> str:
        assert main(["subset", rec, str(tmp_path / "x" / "x.rec"), *flags]) == 2
        return capsys.readouterr().err

    assert "--holdout-seed does not apply" in err("--holdout-seed", "3")
    assert "--share" in err("--share", "C=2")
    assert "kept whole" in err("--groups", "ABC", "--share", "C=0.5")
    assert "--holdout must be a fraction" in err("--holdout", "1.5")
    assert "need --num-identities and --num-images" in err("--uniform", "--num-images", "4")
    assert "data.holdout leaves 0 test identities" in err("--holdout", "0.01")
