import numpy as np
import pytest

from tailface.data.faceset import InMemoryFaceSet
from tailface.data.groups import GroupThresholds
from tailface.errors import ConfigError, DataError
from tailface.method.aggregate import (
    aggregate,
    auto_num_super,
    class_means,
    load_aggregation,
    save_aggregation,
    split_clusters,
)
from tailface.method.cluster_report import plot_sizes, summarize, summary_markdown
from tailface.method.kmeans import inertia, kmeans, kmeanspp_seeds
from tailface.method.partition import Partition, group_table


def clustered(rng, n, d, k, spread=0.3):
    centers = rng.normal(size=(k, d)) * 3
    return (centers[rng.integers(0, k, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)


def test_auto_num_super_on_paper_table1():
    # 902.8K head images in 32,032 classes, 213.4K tail images -> about 7,570 super classes
    n_k = auto_num_super(902_800, 32_032, 213_400)
    assert abs(n_k - 7570) <= 5


@pytest.mark.parametrize("total,sizes,expected", [
    (7200, {"C": 20000, "D": 40000}, {"C": 1800, "D": 5400}),
    (7, {"C": 100, "D": 100}, {"C": 2, "D": 5}),
    (10, {"C": 1, "D": 100}, {"C": 1, "D": 9}),  # C capped at its classes, D takes the rest
    (10, {"C": 0, "D": 100}, {"C": 0, "D": 10}),  # empty group gets nothing
    (1, {"C": 5, "D": 5}, {"C": 1, "D": 1}),  # at least one per non-empty group
    (50, {"C": 3, "D": 4}, {"C": 3, "D": 4}),  # never more clusters than classes
])
def test_split_clusters(total, sizes, expected):
    assert split_clusters(total, {"C": 1, "D": 3}, sizes) == expected


def test_split_clusters_rejects_bad_ratio():
    with pytest.raises(ConfigError, match="ratio"):
        split_clusters(10, {"C": 0, "D": 1}, {"C": 3, "D": 3})


def test_class_means_follow_eq4():
    feats = np.array([[1, 0], [3, 0], [0, 2], [5, 5]], np.float32)
    means = class_means(feats, np.array([0, 0, 1, 2]), 3)
    np.testing.assert_allclose(means, [[2, 0], [0, 2], [5, 5]])
    unit = class_means(feats, np.array([0, 0, 1, 2]), 3, normalize=True)
    np.testing.assert_allclose(unit[2], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    with pytest.raises(DataError, match="no feature"):
        class_means(feats, np.array([0, 0, 2, 2]), 3)


def test_kmeanspp_start_beats_random_start():
    rng = np.random.default_rng(0)
    x = clustered(rng, 3000, 16, 200, spread=0.2)
    seeds = kmeanspp_seeds(x, 200, seed=1)
    assert len(np.unique(seeds)) == 200
    random_seeds = np.random.default_rng(1).choice(len(x), 200, replace=False)
    assert inertia(x, x[seeds]) <= inertia(x, x[random_seeds])
    pp, rnd = kmeans(x, 200, init="kmeans++", seed=1), kmeans(x, 200, init="random", seed=1)
    assert pp.inertia <= rnd.inertia
    assert pp.assignment.max() + 1 == len(pp.centroids)


def test_kmeanspp_with_duplicate_points():
    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 3 distinct points, 12 rows
    seeds = kmeanspp_seeds(x, 5, seed=0)
    assert len(np.unique(seeds)) == 5
    assert len({tuple(r) for r in x[seeds[:3]]}) == 3  # the distinct points come first


def long_tail_set(rng):
    counts = [25] * 6 + [12] * 4 + [5] * 10 + [2] * 30 + [1] * 10  # A B C D
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.zeros((len(labels), 2, 2, 3), np.uint8)
    return InMemoryFaceSet(images, labels, [f"id{c}" for c in range(len(counts))])


def test_aggregate_covers_every_tail_class_once(tmp_path):
    rng = np.random.default_rng(3)
    faceset = long_tail_set(rng)
    part = Partition.from_faceset(faceset, GroupThresholds())
    assert (part.num_head, part.num_tail) == (10, 50)
    tail_images = np.flatnonzero(np.isin(faceset.labels, part.tail))
    feats = rng.normal(size=(len(tail_images), 8)).astype(np.float32)
    agg = aggregate(feats, faceset.labels[tail_images], part, num_super="auto")
    # auto: 50+60+10 = 120 tail images, head mean (150+48)/10 = 19.8 -> 6 super classes,
    # C:D = 1:3 -> 1.5 : 4.5, the tied remainder goes to C
    assert agg.info["num_super_requested"] == 6
    assert agg.num_super == 6 and list(agg.group_of_super) == ["C", "C", "D", "D", "D", "D"]
    assert agg.super_of_tail.shape == (50,)
    assert set(agg.super_of_tail) == set(range(agg.num_super))
    # super classes never mix groups C and D
    for s in range(agg.num_super):
        assert set(part.tail_group()[agg.super_of_tail == s]) == {agg.group_of_super[s]}
    save_aggregation(tmp_path / "sc.json", agg, part, faceset.class_names)
    back = load_aggregation(tmp_path / "sc.json", part)
    np.testing.assert_array_equal(back.super_of_tail, agg.super_of_tail)
    rows = summarize(agg, part)
    assert rows["all super classes"]["images"]["mean"] == pytest.approx(120 / 6)
    assert rows["all super classes"]["classes"]["mean"] == pytest.approx(50 / 6)
    assert "super classes of D" in summary_markdown(agg, part)
    assert plot_sizes(tmp_path / "sizes.png", agg, part).stat().st_size > 1000
    assert "| C | 5-5 | 10 | 50 |" in group_table(part)
    labels = part.prototype_label_of_class(agg.super_of_tail)[faceset.labels]
    assert labels.max() == part.num_head + agg.num_super - 1


def test_aggregate_explicit_and_errors(tmp_path):
    rng = np.random.default_rng(4)
    faceset = long_tail_set(rng)
    part = Partition.from_faceset(faceset)
    tail_images = np.flatnonzero(np.isin(faceset.labels, part.tail))
    feats = rng.normal(size=(len(tail_images), 4)).astype(np.float32)
    agg = aggregate(feats, faceset.labels[tail_images], part, num_super=12, spherical=True)
    assert agg.num_super == 12 and (agg.group_of_super == "C").sum() == 3
    with pytest.raises(ConfigError, match="num_super"):
        aggregate(feats, faceset.labels[tail_images], part, num_super="many")
    with pytest.raises(DataError, match="not a tail class"):
        aggregate(feats, np.zeros(len(feats), np.int64), part)
    other = Partition.from_faceset(faceset, GroupThresholds(a=20, b=3, c=2))
    save_aggregation(tmp_path / "sc.json", agg, part, faceset.class_names)
    with pytest.raises(DataError, match="do not match"):
        load_aggregation(tmp_path / "sc.json", other)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json"):
        load_aggregation(tmp_path / "bad.json", part)


def test_partition_needs_head_and_tail():
    images = np.zeros((6, 2, 2, 3), np.uint8)
    with pytest.raises(DataError, match="no head class"):
        Partition.from_faceset(InMemoryFaceSet(images, [0, 0, 1, 1, 2, 2]))
