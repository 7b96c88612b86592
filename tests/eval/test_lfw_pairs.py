import numpy as np
import pytest

from tailface.errors import ProtocolError
from tailface.eval.lfw_pairs import best_threshold, evaluate_lfw_pairs, read_pairs, roc_curve, ten_fold_accuracy
from tailface.paths import faces_root

REAL_PAIRS = faces_root() / "lfw" / "pairs.txt"


def write_pairs(path, folds=2, per_fold=2):
    lines = [f"{folds} {per_fold}"]
    for f in range(folds):
        lines += [f"P{f}a {1} {2}", f"P{f}b {1} {3}"][:per_fold]
        lines += [f"P{f}a {1} Q{f} {1}", f"P{f}b {2} Q{f} {2}"][:per_fold]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_hand_made_file(tmp_path):
    p = read_pairs(write_pairs(tmp_path / "pairs.txt"))
    assert p.left[:2] == ["P0a/P0a_0001.jpg", "P0b/P0b_0001.jpg"]
    assert p.right[2] == "Q0/Q0_0001.jpg" and p.same.tolist() == [True, True, False, False] * 2
    assert p.fold.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.skipif(not REAL_PAIRS.is_file(), reason=f"real LFW pairs.txt absent ({REAL_PAIRS})")
def test_real_file_folds():
    p = read_pairs(REAL_PAIRS)
    assert len(p.left) == 6000 and p.same.sum() == 3000
    for f in range(10):
        fold = p.fold == f
        assert fold.sum() == 600 and p.same[fold].sum() == 300
        assert p.same[fold][:300].all()   # matched pairs come first within a fold


def test_malformed_lines(tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("1 1\nA 1 2\nA 1 B\n")
    with pytest.raises(ProtocolError, match=r"pairs.txt:3"):
        read_pairs(bad)
    bad.write_text("1 2\nA 1 2\n")
    with pytest.raises(ProtocolError, match="found 1 lines"):
        read_pairs(bad)


def test_best_threshold_by_hand():
    scores = np.array([0.1, 0.2, 0.4, 0.5, 0.9])
    same = np.array([False, False, True, False, True])
    # candidates 0.1-1, .15, .3, .45, .7, 1.9 -> correct 2, 3, 4, 3, 4, 3 : tie -> smallest = 0.3
    assert best_threshold(scores, same) == pytest.approx(0.3)


def test_ten_fold_uses_other_folds():
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.25])
    same = np.array([True, False, True, False, True, False])
    fold = np.array([0, 0, 1, 1, 2, 2])
    r = ten_fold_accuracy(scores, same, fold)
    # fold 2 test: trained on {0.9 s, 0.1 d, 0.8 s, 0.2 d} -> threshold midpoint 0.5:
    # 0.3 (same) rejected, 0.25 (diff) rejected -> 1/2
    assert r["fold_threshold"][2] == pytest.approx(0.5)
    assert r["fold_accuracy"] == [1.0, 1.0, 0.5]


def test_evaluate_with_features(tmp_path):
    pairs = read_pairs(write_pairs(tmp_path / "pairs.txt"))
    ids = sorted(set(pairs.left + pairs.right))
    rng = np.random.default_rng(0)
    people = sorted({i.split("/")[0] for i in ids})
    centre = {p: np.eye(8)[k] for k, p in enumerate(people)}   # orthogonal identities
    feats = np.stack([centre[i.split("/")[0]] + 0.01 * rng.standard_normal(8) for i in ids])
    r = evaluate_lfw_pairs(feats, ids, pairs, fars=(0.5, 1.0))
    assert r["accuracy_mean"] == 1.0 and r["tar_at_far"]["1"] == 1.0
    with pytest.raises(ProtocolError, match="no feature row"):
        evaluate_lfw_pairs(feats[1:], ids[1:], pairs)


def test_roc_curve():
    roc = roc_curve(np.array([0.9, 0.8, 0.8, 0.1]), np.array([True, False, True, False]))
    assert roc["tar"] == [0, 0.5, 1.0, 1.0] and roc["far"] == [0, 0, 0.5, 1.0]
