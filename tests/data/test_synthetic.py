import inspect

import numpy as np
import pytest

from tailface.data import synthetic
from tailface.data.groups import GroupThresholds, group_of_counts
from tailface.data.synthetic import class_size_law, composition_table, synthetic_eval_faceset, synthetic_faceset
from tailface.errors import ConfigError

SMALL = dict(num_identities=24, image_size=16, max_images=12)


@pytest.fixture(scope="module")
def small_set():
    return synthetic_faceset(**SMALL)


def test_deterministic_by_seed(small_set):
    again = synthetic_faceset(**SMALL)
    np.testing.assert_array_equal(small_set.images, again.images)
    np.testing.assert_array_equal(small_set.labels, again.labels)
    assert small_set.image_ids == again.image_ids


def test_different_seeds_differ(small_set):
    other = synthetic_faceset(**SMALL, seed=1)
    assert other.images.shape == small_set.images.shape
    assert np.abs(other.images.astype(int) - small_set.images).mean() > 10


def test_identity_does_not_depend_on_set_size():
    small = synthetic_faceset(num_identities=3, image_size=16, max_images=4, variation=0.0)
    large = synthetic_faceset(num_identities=6, image_size=16, max_images=4, variation=0.0)
    for k in range(3):
        np.testing.assert_array_equal(small.images[small.labels == k][0], large.images[large.labels == k][0])


def test_images_are_uint8_rgb_with_content(small_set):
    assert small_set.images.dtype == np.uint8
    assert small_set.images.shape[1:] == (16, 16, 3)
    assert small_set.read(0).shape == (16, 16, 3)
    per_image_std = small_set.images.reshape(len(small_set), -1).std(axis=1)
    assert per_image_std.min() > 5  # a face on a background, not a flat image
    assert small_set.images.min() < 40 and small_set.images.max() > 200


def test_names_and_ids(small_set):
    assert small_set.class_names[0] == "syn00000"
    assert small_set.class_names[23] == "syn00023"
    assert small_set.image_ids[0] == "syn00000/0000.png"
    assert small_set.image_ids[1] == "syn00000/0001.png"
    assert len(set(small_set.image_ids)) == len(small_set)
    for i in range(len(small_set)):
        assert small_set.image_ids[i].split("/")[0] == small_set.class_names[small_set.labels[i]]


def test_counts_follow_the_law(small_set):
    np.testing.assert_array_equal(small_set.class_counts(), class_size_law(24, max_images=12))


def test_law_hand_computed():
    # exponent 1: x = 4 ** q at q = 1/8, 3/8, 5/8, 7/8 -> 1.19, 1.68, 2.38, 3.36
    np.testing.assert_array_equal(class_size_law(4, max_images=3, exponent=1.0), [3, 2, 1, 1])
    # exponent 2: x = 1 / (1 - 0.75 q) -> 1.10, 1.39, 1.88, 2.91
    np.testing.assert_array_equal(class_size_law(4, max_images=3, exponent=2.0), [2, 1, 1, 1])
    # a flat law fills [min, max] evenly
    np.testing.assert_array_equal(class_size_law(3, max_images=5, exponent=1e-6, min_images=3), [5, 4, 3])


def test_law_is_sorted_and_clipped():
    counts = class_size_law(1000, max_images=40, exponent=1.5, min_images=2)
    assert counts.min() >= 2 and counts.max() <= 40
    assert np.all(np.diff(counts) <= 0)
    assert counts.max() == 40  # the largest quantile reaches the top of the range


def test_default_composition_has_every_group_and_a_heavy_tail():
    defaults = inspect.signature(synthetic_faceset).parameters
    counts = class_size_law(defaults["num_identities"].default, defaults["max_images"].default,
                            defaults["exponent"].default, defaults["min_images"].default)
    groups = group_of_counts(counts, GroupThresholds())
    for g in "ABCD":
        assert (groups == g).sum() >= 20, g
    tail_share = counts[np.isin(groups, ("C", "D"))].sum() / counts.sum()
    assert 0.15 < tail_share < 0.5
    assert 3000 <= counts.sum() <= 6000
    # the table in the module docstring is the current one
    doc_lines = [line.strip() for line in synthetic.__doc__.splitlines()]
    for line in composition_table(counts).splitlines():
        assert line.strip() in doc_lines


def test_eval_identities_are_disjoint():
    train = synthetic_faceset(num_identities=10, image_size=16, max_images=4, variation=0.0)
    ev = synthetic_eval_faceset(num_identities=10, images_per_identity=3, image_size=16, variation=0.0)
    assert np.all(ev.class_counts() == 3)
    assert not set(ev.class_names) & set(train.class_names)
    assert ev.image_ids[0] == "synev00000/0000.png"
    # without nuisances every image of an identity is the same; no eval face equals a train face
    train_faces = np.stack([train.images[train.labels == k][0] for k in range(10)]).astype(int)
    eval_faces = np.stack([ev.images[ev.labels == k][0] for k in range(10)]).astype(int)
    dist = np.abs(train_faces[:, None] - eval_faces[None]).mean(axis=(2, 3, 4))
    assert dist.min() > 3


def test_zero_variation_renders_identical_images():
    fs = synthetic_faceset(num_identities=3, image_size=16, max_images=4, variation=0.0)
    for k in range(3):
        imgs = fs.images[fs.labels == k]
        assert np.all(imgs == imgs[0])


def test_same_identity_is_closer_than_different_identities():
    fs = synthetic_faceset(num_identities=30, image_size=16, max_images=10, exponent=0.5)
    x = fs.images.reshape(len(fs), -1).astype(np.float64)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    same = fs.labels[:, None] == fs.labels[None]
    off_diag = ~np.eye(len(fs), dtype=bool)
    assert d[same & off_diag].mean() < 0.9 * d[~same].mean()


def test_nearest_class_mean_beats_chance_on_held_out_images():
    fs = synthetic_faceset(num_identities=40, image_size=16, max_images=8, exponent=1e-6, min_images=8)
    x = fs.images.reshape(len(fs), -1).astype(np.float64)
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    first = np.zeros(len(fs), dtype=bool)
    for k in range(40):
        first[np.flatnonzero(fs.labels == k)[:6]] = True
    means = np.stack([x[first & (fs.labels == k)].mean(0) for k in range(40)])
    pred = np.argmin(((x[~first][:, None] - means[None]) ** 2).sum(-1), axis=1)
    accuracy = (pred == fs.labels[~first]).mean()
    assert accuracy > 10 * (1 / 40)


@pytest.mark.parametrize("kwargs", [
    dict(num_identities=0), dict(image_size=4), dict(max_images=0), dict(exponent=-1.0),
    dict(min_images=5, max_images=3), dict(variation=-0.1),
])
def test_bad_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError, match="synthetic data"):
        synthetic_faceset(**{"num_identities": 3, "image_size": 16, **kwargs})


def test_bad_eval_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="images_per_identity"):
        synthetic_eval_faceset(num_identities=3, images_per_identity=0)
