import numpy as np
import pytest
from scipy.stats import chisquare

from tailface.data.samplers import ClassAwareSampler, PKSampler, RandomSampler, create_sampler

# long-tailed labels: class c has COUNTS[c] images, shuffled positions
COUNTS = np.array([40, 20, 9, 5, 3, 2, 1, 1, 12, 7])
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(len(COUNTS)), COUNTS))


def test_random_sampler_is_a_deterministic_permutation_per_epoch():
    s = create_sampler("random", LABELS, seed=3)
    a, b = s.indices(0), s.indices(1)
    assert len(s) == len(LABELS) and a.dtype == np.int64
    assert np.array_equal(np.sort(a), np.arange(len(LABELS)))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, RandomSampler(LABELS, seed=3).indices(0))
    assert not np.array_equal(a, RandomSampler(LABELS, seed=4).indices(0))


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_class_aware_class_probabilities_follow_the_definition(strength):
    s = ClassAwareSampler(LABELS, strength=strength, seed=1)
    expect = COUNTS ** (1.0 - strength) / (COUNTS ** (1.0 - strength)).sum()
    np.testing.assert_allclose(s.class_probs(), expect, rtol=1e-12)
    if strength == 0.0:
        np.testing.assert_allclose(s.image_probs, 1.0 / len(LABELS))
    if strength == 1.0:
        np.testing.assert_allclose(s.class_probs(), 1.0 / len(COUNTS))


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_class_aware_empirical_frequencies(strength):
    s = ClassAwareSampler(LABELS, strength=strength, seed=7, num_samples=200_000)
    drawn = s.indices(0)
    assert len(drawn) == len(s) == 200_000
    expect = COUNTS ** (1.0 - strength) / (COUNTS ** (1.0 - strength)).sum()
    observed = np.bincount(LABELS[drawn], minlength=len(COUNTS))
    assert chisquare(observed, expect * len(drawn)).pvalue > 1e-3
    # within a class every image equally often
    members = np.flatnonzero(LABELS == 0)
    per_image = np.bincount(drawn, minlength=len(LABELS))[members]
    assert chisquare(per_image).pvalue > 1e-3
    # the check has power: a nearby exponent is rejected
    wrong = COUNTS ** (1.1 - strength) / (COUNTS ** (1.1 - strength)).sum()
    assert chisquare(observed, wrong * len(drawn)).pvalue < 1e-6


def test_class_aware_determinism_and_default_length():
    s = create_sampler("class_aware", LABELS, strength=1.0, seed=2)
    assert len(s) == len(LABELS)
    assert np.array_equal(s.indices(5), ClassAwareSampler(LABELS, 1.0, seed=2).indices(5))
    assert not np.array_equal(s.indices(5), s.indices(6))


def _blocks(s, epoch):
    return s.indices(epoch).reshape(-1, s.p * s.k)


@pytest.mark.parametrize("p,k", [(3, 4), (4, 2), (8, 3)])
def test_pk_blocks_hold_p_distinct_identities_of_k_images(p, k):
    s = PKSampler(LABELS, p=p, k=k, seed=0)
    assert len(s) == (len(LABELS) // (p * k)) * p * k
    eligible = set(np.flatnonzero(COUNTS >= 2))
    for epoch in range(3):
        for block in _blocks(s, epoch):
            ids = LABELS[block].reshape(p, k)
            assert (ids == ids[:, :1]).all()  # K consecutive images of one identity
            assert len(set(ids[:, 0])) == p
            assert set(ids[:, 0]) <= eligible
            for row in block.reshape(p, k):
                n = COUNTS[LABELS[row[0]]]
                # distinct images when the identity has K or more, else all of them
                assert len(set(row)) == min(n, k)


def test_pk_visits_identities_evenly_and_covers_images():
    s = PKSampler(LABELS, p=4, k=2, seed=5, num_samples=4 * 2 * 200)
    order = s.indices(0)
    ids = LABELS[order].reshape(-1, 2)[:, 0]
    visits = np.bincount(ids, minlength=len(COUNTS))[COUNTS >= 2]
    assert visits.max() - visits.min() <= 1
    # an identity visited often enough sees every one of its images equally often (+-1)
    per_image = np.bincount(order, minlength=len(LABELS))[LABELS == 0]
    assert per_image.max() - per_image.min() <= 1


def test_pk_min_images_and_errors():
    s = PKSampler(LABELS, p=2, k=2, seed=0, min_images=1)
    seen = set()
    for epoch in range(20):
        seen |= set(LABELS[s.indices(epoch)])
    assert seen == set(range(len(COUNTS)))
    with pytest.raises(ValueError, match="identities with at least 2 images"):
        PKSampler(LABELS, p=9, k=2)
    with pytest.raises(ValueError, match="p >= 1"):
        PKSampler(LABELS, p=0, k=2)


def test_pk_determinism():
    a = create_sampler("pk", LABELS, p=3, k=2, seed=1)
    assert np.array_equal(a.indices(2), PKSampler(LABELS, 3, 2, seed=1).indices(2))
    assert not np.array_equal(a.indices(2), a.indices(3))


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown sampler"):
        create_sampler("balanced", LABELS)
    with pytest.raises(ValueError, match="strength"):
        create_sampler("class_aware", LABELS, strength=1.5)
    with pytest.raises(ValueError, match="non-empty 1-d"):
        create_sampler("random", np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="non-negative integers"):
        create_sampler("random", np.array([0, -1]))
