"""Perturbed training sets (tailface.data.perturb, ``tailface perturb``) and the split reunion
measure (tailface.evidence.split_reunion), on tiny hand-made sets."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailface.cli.main import main
from tailface.data.faceset import InMemoryFaceSet
from tailface.data.groups import GroupThresholds, group_of_counts
from tailface.data.open import open_faceset
from tailface.data.perturb import Labelling, Perturbation, perturb
from tailface.data.perturb.manifest import read_list, replay
from tailface.data.perturb.noise import tail_noise
from tailface.data.perturb.shallow import shallow
from tailface.data.perturb.split import split_head, split_names
from tailface.data.recordio import write_recordio
from tailface.errors import ConfigError, DataError
from tailface.evidence.split_reunion import reunion, split_reunion

T = GroupThresholds()
# A: 4 identities (30, 27, 24, 21); B: 2 (15, 10); C: 6 (9, 8, 6, 5, 4, 4); D: 26 (3 x6, 2 x8, 1 x12)
COUNTS = [30, 27, 24, 21, 15, 10, 9, 8, 6, 5, 4, 4] + [3] * 6 + [2] * 8 + [1] * 12
TAIL_IMAGES = 36 + 18 + 16 + 12


def faceset(counts=COUNTS, image_size=2):
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.zeros((len(labels), image_size, image_size, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels)) % 256
    images[:, 0, 0, 1] = np.arange(len(labels)) // 256
    return InMemoryFaceSet(images, labels, class_names=[f"p{c:02d}" for c in range(len(counts))],
                           image_ids=[f"p{c:02d}/{i:04d}.png" for i, c in enumerate(labels)])


def labelling(counts=COUNTS):
    return Labelling.of_faceset(faceset(counts))


def as_dict(lab):
    return dict(lab.pairs())


def source_replay(source, manifest):
    return replay(source.image_ids, [source.class_names[c] for c in source.labels], manifest)


# -- split ----------------------------------------------------------------------------------------

def test_split_moves_a_share_of_the_images_of_a_share_of_the_a_identities_into_tail_identities():
    lab = labelling()
    new, section = split_head(lab, 0.5, 1 / 3, T, seed=0)
    assert section["eligible"] == 4 and len(section["identities"]) == 2
    counts = dict(zip(new.names, new.counts()))
    for record in section["identities"]:
        n = record["images"]
        moved = [img for chunk in record["moved"] for img in chunk["images"]]
        assert len(moved) == round(n / 3) and len(set(moved)) == len(moved)
        assert all(img.startswith(record["identity"] + "/") for img in moved)  # the person's own images
        assert counts[record["identity"]] == n - len(moved)
        for k, chunk in enumerate(record["moved"], 1):
            assert chunk["identity"] == f"{record['identity']}~split{k}"
            assert 1 <= len(chunk["images"]) <= 3 and counts[chunk["identity"]] == len(chunk["images"])
            assert group_of_counts([counts[chunk["identity"]]])[0] == "D"
    assert len(new) == len(lab) and sorted(new.images) == list(range(len(lab)))  # same images, new labels
    untouched = set(lab.names) - {r["identity"] for r in section["identities"]}
    assert all(counts[name] == COUNTS[lab.names.index(name)] for name in untouched)


def test_split_chunks_are_one_to_three_images_drawn_uniformly():
    lab = labelling([60] * 40 + [1])
    _, section = split_head(lab, 1.0, 0.5, T, seed=3)
    sizes = [len(c["images"]) for r in section["identities"] for c in r["moved"][:-1]]  # the last: what is left
    assert set(sizes) == {1, 2, 3} and len(section["identities"]) == 40
    assert abs(np.mean(sizes) - 2) < 0.15  # 40 x 30 images: ~600 chunks, uniform mean 2 (sd of the mean ~0.03)
    assert all(1 <= len(r["moved"][-1]["images"]) <= 3 for r in section["identities"])


def test_split_edge_shares():
    lab = labelling()
    same, section = split_head(lab, 0.0, 0.3, T, seed=0)
    assert section["identities"] == [] and as_dict(same) == as_dict(lab)
    whole, section = split_head(lab, 0.25, 1.0, T, seed=0)  # one identity cut up entirely
    (record,) = section["identities"]
    assert record["identity"] not in whole.names and sum(len(c["images"]) for c in record["moved"]) == record["images"]
    one, section = split_head(labelling([21, 1]), 1.0, 0.01, T, seed=0)  # at least one image moves
    assert len(section["identities"][0]["moved"][0]["images"]) == 1 and list(one.counts()) == [20, 1, 1]


# -- noise ----------------------------------------------------------------------------------------

def test_closed_set_noise_relabels_a_share_of_the_tail_keeping_every_identity_size():
    lab = labelling()
    new, section = tail_noise(lab, 0.25, 0.0, T, seed=0)
    assert section["noisy"] == round(0.25 * TAIL_IMAGES) == len(section["relabelled"])
    assert section["replaced"] == [] and section["outside"] == []
    tail = {n for n, g in zip(lab.names, lab.groups(T)) if g in "CD"}
    before, after = as_dict(lab), as_dict(new)
    for change in section["relabelled"]:
        assert change["from"] != change["to"] and {change["from"], change["to"]} <= tail
        assert before[change["image"]] == change["from"] and after[change["image"]] == change["to"]
    assert sum(before[i] != after[i] for i in before) == section["noisy"]  # nothing else changed
    np.testing.assert_array_equal(new.counts(), lab.counts())  # the group table does not move


def test_open_set_noise_replaces_tail_images_by_images_of_held_out_identities():
    lab = labelling()
    new, section = tail_noise(lab, 0.3, 1.0, T, seed=1)
    held = {r["identity"] for r in section["outside"]}
    held_images = {i for r in section["outside"] for i in r["images"]}
    left = TAIL_IMAGES - len(held_images)
    assert section["tail_images"] == left and section["noisy"] == round(0.3 * left) == len(section["replaced"])
    assert len(held_images) >= len(section["replaced"]) and section["relabelled"] == []
    assert not held & set(new.names)  # the outside people left training
    after = as_dict(new)
    for change in section["replaced"]:
        assert change["image"] not in after and after[change["by"]] == change["identity"]
        assert change["by"] in held_images and change["by_identity"] in held
    kept = dict(zip(new.names, new.counts()))
    assert all(kept[n] == c for n, c in zip(lab.names, lab.counts()) if n not in held)  # sizes kept
    assert len(set(new.images)) == len(new)


def test_noise_splits_closed_and_open_by_the_argument():
    lab = labelling()
    _, section = tail_noise(lab, 0.4, 0.5, T, seed=2)
    n = section["noisy"]
    assert n == round(0.4 * section["tail_images"])
    assert len(section["replaced"]) == round(0.5 * n) and len(section["relabelled"]) == n - round(0.5 * n)
    replaced = {c["image"] for c in section["replaced"]}
    assert not replaced & {c["image"] for c in section["relabelled"]}


def test_held_out_people_are_never_split_off_identities():
    lab = labelling()
    plan = Perturbation(split=(1.0, 0.5), noise=(0.5, 1.0), seed=0)
    _, changes = perturb(lab, plan)
    touched = {r["identity"] for r in changes["split"]["identities"]}
    touched |= {c["identity"] for r in changes["split"]["identities"] for c in r["moved"]}
    assert changes["noise"]["outside"] and not touched & {r["identity"] for r in changes["noise"]["outside"]}


# -- shallow --------------------------------------------------------------------------------------

def test_shallow_keeps_at_most_max_images_per_identity():
    lab = labelling()
    new, section = shallow(lab, 5, seed=0)
    counts = dict(zip(new.names, new.counts()))
    assert set(new.names) == set(lab.names)
    assert all(counts[n] == min(c, 5) for n, c in zip(lab.names, lab.counts()))
    dropped = {r["identity"]: r["images"] for r in section["dropped"]}
    assert set(dropped) == {n for n, c in zip(lab.names, lab.counts()) if c > 5}
    assert all(len(dropped[n]) == c - 5 for n, c in zip(lab.names, lab.counts()) if c > 5)
    assert not {i for images in dropped.values() for i in images} & set(as_dict(new))


# -- composition, manifest, streams ---------------------------------------------------------------

PLAN = Perturbation(split=(0.5, 1 / 3), noise=(0.3, 0.5), shallow=12, seed=4)


def test_replaying_the_manifest_on_the_source_gives_the_perturbed_set():
    source = faceset()
    new, changes = perturb(Labelling.of_faceset(source), PLAN)
    manifest = {"order": ["split", "noise", "shallow"], **changes}
    assert source_replay(source, manifest) == as_dict(new)
    assert changes["split"]["identities"] and changes["noise"]["replaced"] and changes["noise"]["relabelled"]
    assert changes["shallow"]["dropped"] and max(new.counts()) <= 12
    with pytest.raises(DataError, match="noise.relabelled"):  # a change that does not fit is refused
        bad = json.loads(json.dumps(manifest))
        bad["noise"]["relabelled"][0]["from"] = "nobody"
        source_replay(source, bad)


def test_a_seed_gives_the_same_set_and_each_perturbation_has_its_own_stream():
    lab = labelling()
    first, changes = perturb(lab, PLAN)
    again, _ = perturb(lab, PLAN)
    assert first.pairs() == again.pairs()
    other, _ = perturb(lab, Perturbation(split=PLAN.split, noise=PLAN.noise, shallow=PLAN.shallow, seed=5))
    assert other.pairs() != first.pairs()
    for noise in [None, (0.1, 0.0), (0.5, 1.0)]:  # the noise arguments never change the split
        _, alone = perturb(lab, Perturbation(split=PLAN.split, noise=noise, seed=PLAN.seed))
        assert alone["split"] == changes["split"]
    split_only, section = split_head(lab, *PLAN.split, T, PLAN.seed)  # noise after a split: the same draw
    touched = split_names(section)
    protected = set(touched) | {name for names in touched.values() for name in names}
    assert tail_noise(split_only, *PLAN.noise, T, PLAN.seed, protected)[1] == changes["noise"]
    _, noise_alone = tail_noise(lab, *PLAN.noise, T, PLAN.seed)
    _, plain = perturb(lab, Perturbation(noise=PLAN.noise, seed=PLAN.seed))
    assert plain["noise"] == noise_alone  # noise without a split ignores the split stream
    _, capped = perturb(lab, Perturbation(shallow=12, seed=PLAN.seed))
    _, capped_too = shallow(lab, 12, PLAN.seed)
    assert capped["shallow"] == capped_too


def test_bad_values_name_the_flag():
    lab = labelling()
    for plan, flag in [(Perturbation(split=(1.5, 0.3)), "--split-head"),
                       (Perturbation(split=(0.5, 0.0)), "--split-head"),
                       (Perturbation(noise=(-0.1, 0.0)), "--tail-noise"),
                       (Perturbation(noise=(0.2, 1.1)), "--tail-noise"),
                       (Perturbation(shallow=0), "--shallow"), (Perturbation(), "nothing to perturb")]:
        with pytest.raises(ConfigError, match=flag):
            perturb(lab, plan)
    with pytest.raises(ConfigError, match="--split-head: no identity of group A"):
        perturb(labelling([15, 3, 2]), Perturbation(split=(0.5, 0.3)))
    with pytest.raises(ConfigError, match="--tail-noise: no tail identity"):
        perturb(labelling([30, 12]), Perturbation(noise=(0.2, 0.0)))
    with pytest.raises(ConfigError, match="--tail-noise: the 2 closed-set images come from too few identities"):
        perturb(labelling([30, 4]), Perturbation(noise=(0.5, 0.0)))
    with pytest.raises(ConfigError, match="--tail-noise: open-set noise needs 2 images of held-out people, and the "
                                          "tail identities that may leave training hold only 0"):
        tail_noise(labelling([30, 4, 1]), 0.4, 1.0, T, seed=0, protected={"p01", "p02"})


# -- the command and the dataset format -----------------------------------------------------------

@pytest.fixture
def packed(tmp_path):
    source = faceset(image_size=8)
    write_recordio(source, tmp_path / "src" / "train.rec", progress=False)
    return tmp_path / "src", source


def test_cli_writes_a_set_that_open_faceset_and_analyze_read(packed, tmp_path, capsys):
    src, source = packed
    out = tmp_path / "sets" / "mixed"
    args = ["perturb", str(src), str(out), "--split-head", "0.5:0.3333", "--tail-noise", "0.3:0.5",
            "--shallow", "12", "--seed", "4"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "split: 2 of 4 A identities" in printed and "relabelled (closed-set)" in printed
    assert printed.count("total           all") == 2  # the group table before and after
    perturbed = open_faceset(out)
    lines = [line.split("\t") for line in (out / "perturbed.lst").read_text().splitlines() if not line.startswith("#")]
    assert "# source: ../../src" in (out / "perturbed.lst").read_text()
    assert perturbed.image_ids == [i for i, _ in lines]  # the source's image ids, kept
    assert [perturbed.class_names[c] for c in perturbed.labels] == [n for _, n in lines]
    assert perturbed.source == str(out / "perturbed.lst")
    assert open_faceset(out / "perturbed.lst").image_ids == perturbed.image_ids
    pack = open_faceset(src)
    index = {i: k for k, i in enumerate(pack.image_ids)}
    for k in (0, len(perturbed) - 1):  # the source's own images
        np.testing.assert_array_equal(perturbed.read(k), pack.read(index[perturbed.image_ids[k]]))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "tailface-perturbed" and manifest["seed"] == 4
    assert source_replay(source, manifest) == dict(lines)
    assert manifest["result"]["images"] == len(perturbed)
    assert main(["analyze", str(out)]) == 0
    table = capsys.readouterr().out
    assert f"{len(perturbed)} images" in table.replace(",", "") and "total" in table
    assert main(args) == 0  # its own output is rewritten, identically
    assert open_faceset(out).image_ids == perturbed.image_ids


def test_opening_refuses_a_changed_source(packed, tmp_path, capsys):
    src, source = packed
    out = tmp_path / "split"
    assert main(["perturb", str(src), str(out), "--split-head", "0.5:0.5"]) == 0
    other = source.with_labels(source.labels[::-1].copy(), source.class_names)
    write_recordio(other, src / "train.rec", progress=False)
    with pytest.raises(DataError, match="changed since tailface perturb"):
        open_faceset(out)
    assert main(["analyze", str(out)]) == 2
    assert capsys.readouterr().err == (f"tailface analyze: error: {out / 'perturbed.lst'}: its source {src} changed "
                                       "since tailface perturb wrote it (its image ids or identities differ); perturb "
                                       "the source again\n")


@pytest.mark.parametrize("flags,message", [
    pytest.param(["--split-head", "1.5:0.3"], "--split-head: the share of A identities must be in [0, 1], got 1.5",
                 id="split_share"),
    pytest.param(["--split-head", "0.5:0"], "--split-head: the share of their images must be in (0, 1], got 0.0",
                 id="split_images"),
    pytest.param(["--split-head", "0.5"], "--split-head '0.5': expected SHARE:IMAGES", id="split_form"),
    pytest.param(["--tail-noise", "1.2"], "--tail-noise: the share of tail images must be in [0, 1], got 1.2",
                 id="noise_share"),
    pytest.param(["--tail-noise", "0.2:1.5"], "--tail-noise: the open-set share must be in [0, 1], got 1.5",
                 id="noise_open"),
    pytest.param(["--tail-noise", "0.2:x"], "--tail-noise '0.2:x': expected SHARE[:OPEN]", id="noise_form"),
    pytest.param(["--shallow", "0"], "--shallow: at most MAX images per identity needs MAX >= 1, got 0",
                 id="shallow_max"),
    pytest.param([], "nothing to perturb", id="nothing"),
])
def test_cli_bad_arguments_are_one_line_exit_2(packed, tmp_path, capsys, flags, message):
    src, _ = packed
    assert main(["perturb", str(src), str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tailface perturb: error: ") and message in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_data_without_head_or_tail_and_a_folder_it_did_not_write(tmp_path, capsys):
    write_recordio(faceset([15, 12, 3, 2]), tmp_path / "nohead" / "train.rec", progress=False)
    write_recordio(faceset([30, 25, 12]), tmp_path / "notail" / "train.rec", progress=False)
    assert main(["perturb", str(tmp_path / "nohead"), str(tmp_path / "o1"), "--split-head", "0.5:0.3"]) == 2
    assert capsys.readouterr().err == (f"tailface perturb: error: {tmp_path / 'nohead' / 'train.rec'}: --split-head: "
                                       "no identity of group A (>= 21 images) to split\n")
    assert main(["perturb", str(tmp_path / "notail"), str(tmp_path / "o2"), "--tail-noise", "0.2"]) == 2
    assert "notail/train.rec: --tail-noise: no tail identity" in capsys.readouterr().err
    write_recordio(faceset([30, 4]), tmp_path / "onetail" / "train.rec", progress=False)
    assert main(["perturb", str(tmp_path / "onetail"), str(tmp_path / "o3"), "--tail-noise", "0.5"]) == 2
    assert capsys.readouterr().err == (f"tailface perturb: error: {tmp_path / 'onetail' / 'train.rec'}: --tail-noise: "
                                       "the 2 closed-set images come from too few identities (2 from one) to all "
                                       "change identity; raise the share\n")
    write_recordio(faceset([30]), tmp_path / "onlyhead" / "train.rec", progress=False)  # its tail: split-off only
    assert main(["perturb", str(tmp_path / "onlyhead"), str(tmp_path / "o4"), "--split-head", "1:0.5",
                 "--tail-noise", "0.5:1"]) == 2
    assert capsys.readouterr().err == (f"tailface perturb: error: {tmp_path / 'onlyhead' / 'train.rec'}: --tail-noise: "
                                       "open-set noise needs 8 images of held-out people, and the tail identities "
                                       "that may leave training hold only 0\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["perturb", str(tmp_path / "notail"), str(tmp_path / "mine"), "--shallow", "5"]) == 2
    assert "holds no perturbed set written by tailface perturb" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.sampled_from("ab#: \t\n/.~1"), max_size=60))
def test_a_broken_list_is_a_data_error(tmp_path, text):
    (tmp_path / "perturbed.lst").write_text(text)
    try:
        header, pairs = read_list(tmp_path / "perturbed.lst")
    except DataError:
        return
    assert header["source"] and pairs and all(i and n and "\t" not in i + n for i, n in pairs)


def test_the_command_loads_no_torch():
    check = "import sys, tailface.cli.perturb, tailface.data.open; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", check]).returncode == 0


# -- item 3 of issue 22: does the clustering reunite a split person? ------------------------------

def test_reunion_share_and_chance_on_a_hand_made_clustering():
    # D super classes 0 (a~split1, a~split2, x), 1 (a~split3, y), 2 (b~split1, z); C super class 3 (b, w)
    super_of = {"a~split1": 0, "a~split2": 0, "x": 0, "a~split3": 1, "y": 1, "b~split1": 2, "z": 2, "b": 3, "w": 3}
    groups = ["D", "D", "D", "C"]
    siblings = {"a": ["a~split1", "a~split2", "a~split3"], "b": ["b~split1", "b~split2"]}
    result = reunion(super_of, groups, siblings)
    # counted: the three of a and b~split1 (its sibling b is a C class); b~split2 is not clustered
    assert (result.fakes, result.counted, result.reunited) == (5, 4, 2) and result.share == 0.5
    # D: N = 7 classes in super classes of 3, 2, 2; with k = 2 siblings in D:
    # P(apart) = 3/7 * (4/6 * 3/5) + 2 * 2/7 * (5/6 * 4/5) = 12/70 + 8/21; b~split1 has no sibling in D: 0
    reunited_d = 1 - (3 / 7 * 4 / 6 * 3 / 5 + 2 * (2 / 7 * 5 / 6 * 4 / 5))
    assert result.chance == pytest.approx(3 * reunited_d / 4)


def test_split_reunion_reads_a_cell_and_a_manifest(tmp_path):
    cluster = {"super_of_class_name": {"a~split1": 0, "a~split2": 0, "x": 1}, "group_of_super": ["D", "D"]}
    manifest = {"split": {"identities": [{"identity": "a", "images": 21, "moved": [
        {"identity": "a~split1", "images": ["1.jpg"]}, {"identity": "a~split2", "images": ["2.jpg"]}]}]}}
    (tmp_path / "super_classes.json").write_text(json.dumps(cluster))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    result = split_reunion(tmp_path / "super_classes.json", tmp_path / "manifest.json")
    assert (result.counted, result.reunited) == (2, 2) and result.chance == pytest.approx(1 / 3)
    with pytest.raises(DataError, match="cannot read the super classes"):
        split_reunion(tmp_path / "absent.json", tmp_path / "manifest.json")
