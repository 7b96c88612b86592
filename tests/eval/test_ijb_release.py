"""Reading an IJB release as distributed: layout, the four meta formats, the pair list in blocks,
the synthetic generator's files, and every bad or missing file as one line naming it (the rows of
docs/errors.md, section "IJB-B / IJB-C releases", test ids = row names)."""

import re

import numpy as np
import pytest

from tailface.cli.main import main as cli_main
from tailface.data.ijb_pairs import read_pairs
from tailface.data.ijb_release import IjbRelease, find_root
from tailface.errors import DataError
from tailface.eval.features import save_features
from tailface.eval.ijb_synthetic import write_synthetic_ijb


@pytest.fixture
def root(tmp_path):
    write_synthetic_ijb(tmp_path / "IJB_release" / "IJBC", "ijbc", enrolled=2, unenrolled=1, image_size=16)
    return tmp_path / "IJB_release" / "IJBC"


def test_layout_meta_and_the_folder_above(root, tmp_path):
    assert find_root("ijbc", root) == root and find_root("ijbc", root.parent) == root
    with pytest.raises(DataError, match=r"ijbc_face_tid_mid.txt: file not found \(expected an IJBC release"):
        find_root("ijbc", tmp_path)
    with pytest.raises(DataError, match="release folder not found"):
        find_root("ijbb", tmp_path / "nowhere")


def test_release_files_as_the_anchors_read_them(root):
    r = IjbRelease.open("ijbc", root)
    text = (root / "meta" / "ijbc_face_tid_mid.txt").read_text().split()
    assert r.images.names == text[0::3] and r.images.templates.tolist() == [int(v) for v in text[1::3]]
    assert r.images.medias.tolist() == [int(v) for v in text[2::3]]
    pts = [line.split() for line in (root / "meta" / "ijbc_name_5pts_score.txt").read_text().splitlines()]
    assert all(len(p) == 12 and all(re.fullmatch(r"-?\d+\.\d{3}", v) for v in p[1:]) for p in pts)
    assert np.array_equal(r.images.landmarks, np.array([[float(v) for v in p[1:11]] for p in pts]).reshape(-1, 5, 2))
    assert r.images.scores.tolist() == [float(p[11]) for p in pts]
    pairs = np.loadtxt(root / "meta" / "ijbc_template_pair_label.txt", dtype=np.int64)
    assert np.array_equal(np.c_[r.pairs.first, r.pairs.second, r.pairs.label], pairs)
    g1, g2, probe = r.searches
    assert (root / "meta" / "ijbc_1N_gallery_G1.csv").read_text().startswith("TEMPLATE_ID,SUBJECT_ID,FILENAME")
    assert len(g1.templates) == len(g2.templates) == 2 and len(probe.templates) == 5 * 2
    assert set(g1.templates) | set(g2.templates) | set(probe.templates) == set(r.images.templates.tolist())
    assert list(probe.templates) == sorted(probe.templates)  # ascending ids: the anchors' np.unique order
    assert r.gallery_names == ("G1", "G2")


def test_ijbb_names_its_galleries_s1_s2(tmp_path):
    write_synthetic_ijb(tmp_path / "IJBB", "ijbb", enrolled=1, unenrolled=0, probe_templates=1, image_size=16)
    r = IjbRelease.open("ijbb", tmp_path)
    assert [p.name for p in r.search_files] == ["ijbb_1N_gallery_S1.csv", "ijbb_1N_gallery_S2.csv",
                                                "ijbb_1N_probe_mixed.csv"]
    assert r.gallery_names == ("S1", "S2") and len(r.searches[0].templates) == 1


def test_csv_without_the_named_columns_reads_the_first_two(tmp_path):
    from tailface.data.ijb_meta import read_search_list

    path = tmp_path / "g.csv"
    path.write_text("T,S,FILE\n5,50,a.jpg\n5,50,b.jpg\n3,30,c.jpg\n")
    s = read_search_list(path)
    assert s.templates.tolist() == [3, 5] and s.subjects.tolist() == [30, 50]
    path.write_text("FILENAME,SUBJECT_ID,TEMPLATE_ID\na.jpg,50,5\n")
    assert read_search_list(path).templates.tolist() == [5]


@pytest.mark.parametrize("block", [7, 64, 1 << 25])
def test_pair_list_in_blocks_cut_anywhere(tmp_path, block):
    rng = np.random.default_rng(0)
    pairs = np.c_[rng.integers(0, 10**6, (500, 2)), rng.integers(0, 2, 500)]
    path = tmp_path / "p.txt"
    path.write_text("".join(f"{a} {b} {y}\n" + ("\n" if k % 97 == 0 else "") for k, (a, b, y) in enumerate(pairs)))
    got = read_pairs(path, block_bytes=block)
    assert np.array_equal(np.c_[got.first, got.second, got.label], pairs)
    assert got.first.dtype == np.int32 and got.label.dtype == np.int8


def _edit(path, old, new, count=1):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def _second_line(path):
    return path.read_text().splitlines()[1]


BAD = {
    "release_without_meta": lambda root: [p.rename(root.parent / p.name) for p in [root / "meta"]],
    "tid_mid_two_fields": lambda root: _edit(root / "meta/ijbc_face_tid_mid.txt", _second_line(
        root / "meta/ijbc_face_tid_mid.txt"), " ".join(_second_line(root / "meta/ijbc_face_tid_mid.txt").split()[:2])),
    "tid_mid_not_integer": lambda root: _edit(root / "meta/ijbc_face_tid_mid.txt", "\n2.jpg ", "\n2.jpg x"),
    "landmark_not_a_number": lambda root: _edit(root / "meta/ijbc_name_5pts_score.txt", "\n2.jpg ", "\n2.jpg abc"),
    "lists_disagree": lambda root: _edit(root / "meta/ijbc_name_5pts_score.txt", "\n2.jpg ", "\n2b.jpg "),
    "pair_four_fields": lambda root: _edit(root / "meta/ijbc_template_pair_label.txt", "\n", " 7\n"),
    "pair_bad_label": lambda root: (root / "meta/ijbc_template_pair_label.txt").write_text(
        (root / "meta/ijbc_template_pair_label.txt").read_text() + "1 2 3\n"),
    "pair_unknown_template": lambda root: (root / "meta/ijbc_template_pair_label.txt").write_text(
        (root / "meta/ijbc_template_pair_label.txt").read_text() + "999999 999998 0\n"),
    "gallery_missing": lambda root: (root / "meta/ijbc_1N_gallery_G2.csv").unlink(),
    "gallery_two_subjects": lambda root: (root / "meta/ijbc_1N_gallery_G1.csv").write_text(
        (root / "meta/ijbc_1N_gallery_G1.csv").read_text() + (root / "meta/ijbc_1N_gallery_G1.csv").read_text()
        .splitlines()[1].split(",", 1)[0] + ",1,x.jpg,1\n"),
}
MESSAGES = {
    "release_without_meta": r"IJBC/meta/ijbc_face_tid_mid.txt: file not found \(expected an IJBC release",
    "tid_mid_two_fields": r"ijbc_face_tid_mid.txt:2: 2 fields, expected 3 \(image template_id media_id\)",
    "tid_mid_not_integer": r"ijbc_face_tid_mid.txt:2: template id 'x\d+' is not an integer",
    "landmark_not_a_number": r"ijbc_name_5pts_score.txt:2: landmarks and score must be numbers, got 'abc",
    "lists_disagree": r"ijbc_name_5pts_score.txt: image 2 is '2b.jpg' where .*ijbc_face_tid_mid.txt has '2.jpg'",
    "pair_four_fields": r"ijbc_template_pair_label.txt:1: 4 fields, expected 3",
    "pair_bad_label": r"ijbc_template_pair_label.txt:\d+: label 3 is not 0 or 1",
    "pair_unknown_template": r"ijbc_template_pair_label.txt: 1 template ids have no image in the release's face "
                             r"list \(e.g. 99999",
    "gallery_missing": r"ijbc_1N_gallery_G2.csv: file not found",
    "gallery_two_subjects": r"ijbc_1N_gallery_G1.csv:\d+: template \d+ belongs to subjects \d+ and 1",
}


@pytest.mark.parametrize("row", list(BAD))
def test_bad_release_is_one_line_exit_2(row, root, tmp_path, capsys):
    r = IjbRelease.open("ijbc", root)
    features = save_features(tmp_path / "f.npz", np.random.default_rng(0).standard_normal((len(r.images), 8)),
                             r.images.names)
    BAD[row](root)
    code = cli_main(["eval", "--features", str(features), "--protocols", f"ijbc:{root}", "--out",
                     str(tmp_path / "e"), "--no-plots"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("tailface eval: error: "), err
    assert re.search(MESSAGES[row], err), err
    print(err.replace(str(tmp_path), "DIR"))  # the message documented in docs/errors.md


def test_unknown_modifier_and_missing_image_ids(root, tmp_path, capsys):
    features = save_features(tmp_path / "f.npz", np.ones((3, 4)), ["a", "b", "c"])
    assert cli_main(["eval", "--features", str(features), "--protocols", f"ijbc+nonorm:{root}", "--out",
                     str(tmp_path / "e")]) == 2
    assert "unknown or repeated modifier ['nonorm']; choose among +unitnorm, +nodetector" in capsys.readouterr().err
    assert cli_main(["eval", "--features", str(features), "--protocols", f"ijbc:{root}", "--out",
                     str(tmp_path / "e")]) == 2
    assert "f.npz: " in capsys.readouterr().err
