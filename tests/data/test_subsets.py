import numpy as np
import pytest

from tailface.cli.main import main
from tailface.data.faceset import InMemoryFaceSet
from tailface.data.groups import group_of_counts
from tailface.data.subsets import long_tail_sizes, long_tail_subset, uniform_subset
from tailface.data.training_set import sample_rng
from tailface.errors import ConfigError


def labels_from_counts(counts):
    return np.repeat(np.arange(len(counts)), counts)


# classes 0-1: A (30, 25); 2-3: B (15, 10); 4-6: C (9, 5, 4); 7-10: D (3, 2, 1, 1)
COUNTS = np.array([30, 25, 15, 10, 9, 5, 4, 3, 2, 1, 1])
LABELS = labels_from_counts(COUNTS)


# group compositions: tests/data/test_training_set.py


def test_uniform_subset_has_exact_sizes():
    idx = uniform_subset(LABELS, num_identities=4, num_images=42, rng=sample_rng(3))
    sizes = np.bincount(LABELS[idx])
    sizes = np.sort(sizes[sizes > 0])
    np.testing.assert_array_equal(sizes, [10, 10, 11, 11])
    assert len(np.unique(idx)) == 42
    with pytest.raises(ConfigError, match="uniform"):
        uniform_subset(LABELS, num_identities=5, num_images=60, rng=sample_rng(0))  # needs 5 classes with >= 12


@pytest.mark.parametrize("n,m,largest", [(10, 100, 50), (7, 30, 100), (5, 5, 10), (5, 41, 10), (300, 3000, 60)])
def test_long_tail_sizes(n, m, largest):
    s = long_tail_sizes(n, m, largest)
    assert len(s) == n and s.sum() == m
    assert s[0] <= largest and s[-1] == 1 and np.all(np.diff(s) <= 0)


def test_long_tail_sizes_infeasible():
    with pytest.raises(ConfigError):
        long_tail_sizes(3, 100, 10)
    with pytest.raises(ConfigError):
        long_tail_sizes(5, 4, 10)


def test_uniform_and_long_tail_match_in_identities_and_images():
    rng = np.random.default_rng(0)
    counts = np.maximum(1, (200 * rng.pareto(1.2, size=400)).astype(int) // 10)
    labels = labels_from_counts(counts)
    uni = uniform_subset(labels, 50, 600, sample_rng(1))
    tail = long_tail_subset(labels, 50, 600, sample_rng(1))
    for idx in (uni, tail):
        assert len(idx) == 600 and len(np.unique(labels[idx])) == 50 and len(np.unique(idx)) == 600
    uni_sizes = np.bincount(labels[uni])[np.unique(labels[uni])]
    tail_sizes = np.bincount(labels[tail])[np.unique(labels[tail])]
    assert set(uni_sizes) == {12}
    assert tail_sizes.min() == 1 and tail_sizes.max() > 3 * 12
    # the long-tail subset has tail groups, the uniform one has none below B
    assert set(group_of_counts(tail_sizes)) >= {"C", "D"}
    assert set(group_of_counts(uni_sizes)) == {"B"}
    np.testing.assert_array_equal(tail, long_tail_subset(labels, 50, 600, sample_rng(1)))
    assert not np.array_equal(tail, long_tail_subset(labels, 50, 600, sample_rng(2)))


def test_long_tail_subset_respects_availability_and_cap():
    idx = long_tail_subset(LABELS, 6, 40, sample_rng(0), max_per_class=12)
    sizes = np.bincount(LABELS[idx], minlength=len(COUNTS))
    assert sizes.sum() == 40 and (sizes > 0).sum() == 6
    assert sizes.max() <= 12 and np.all(sizes <= COUNTS)
    with pytest.raises(ConfigError):
        long_tail_subset(LABELS, 3, 80, sample_rng(0))  # would need three classes of >= 26 images


def test_cli_writes_a_subset_pack(tmp_path, capsys):
    from tailface.data.open import open_faceset

    images = np.zeros((len(LABELS), 8, 8, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(len(LABELS)) % 256
    source = InMemoryFaceSet(images, LABELS, image_ids=[f"img{i:03d}.png" for i in range(len(LABELS))])
    from tailface.data.recordio import write_recordio

    write_recordio(source, tmp_path / "all.rec", progress=False)
    out = tmp_path / "ab" / "train.rec"
    assert main(["subset", str(tmp_path / "all.rec"), str(out), "--groups", "AB", "--no-progress"]) == 0
    subset = open_faceset(out)
    assert len(subset) == 80 and subset.num_classes == 4
    assert set(subset.image_ids) == {f"img{i:03d}.png" for i in np.flatnonzero(LABELS <= 3)}  # classes of A and B
    capsys.readouterr()
    assert main(["subset", str(tmp_path / "all.rec"), str(tmp_path / "u" / "u.rec"), "--uniform",
                 "--num-identities", "4", "--num-images", "42", "--no-progress"]) == 0
    assert len(open_faceset(tmp_path / "u" / "u.rec")) == 42
    assert main(["subset", str(tmp_path / "all.rec"), str(tmp_path / "x" / "x.rec"), "--groups", "AZ"]) == 2
    assert "groups" in capsys.readouterr().err
    assert main(["subset", str(tmp_path / "all.rec"), str(tmp_path / "x.rec"), "--groups", "AB"]) == 2
    assert "folder of its own" in capsys.readouterr().err


def test_long_tail_sizes_follow_per_rank_caps():
    caps = np.array([35, 30, 20, 20, 12, 12, 12, 10, 10, 10])
    s = long_tail_sizes(10, 120, caps)
    assert s.sum() == 120 and np.all(s <= caps) and s[-1] == 1 and np.all(np.diff(s) <= 0)


def test_long_tail_subset_when_few_classes_are_large():
    # one big class, many mid-sized ones: the profile bends under the available sizes
    counts = np.array([35] + [15] * 30 + [2] * 100)
    labels = labels_from_counts(counts)
    idx = long_tail_subset(labels, 30, 300, sample_rng(0))
    sizes = np.bincount(labels[idx], minlength=len(counts))
    assert len(idx) == 300 and (sizes > 0).sum() == 30 and np.all(sizes <= counts)
    assert sizes.max() > 15 and sizes[sizes > 0].min() == 1
