import numpy as np
import pytest

from tailface.errors import ProtocolError
from tailface.eval.verification import VERIFICATION_FARS, PairScores, verification_rates

from . import naive


def test_hand_built_pairs():
    # unit vectors in the plane: scores are cosines of angle differences
    angles = np.radians([0, 0, 90, 60, 180])
    x = np.stack([np.cos(angles), np.sin(angles)], 1)
    labels = np.array([0, 0, 1, 1, 2])
    # genuine: (0,1) = 1.0, (2,3) = cos 30 = 0.866; impostors (8): 0.5 (0-60) x2, cos 90 = 0 x2,
    # -1 x2 (0-180), cos 120 = -0.5 (60-180), cos 90 = 0 (90-180)  -> sorted 0.5 0.5 0 0 0 -0.5 -1 -1
    r = verification_rates(x, labels, [0.0, 0.125, 0.25, 0.5, 1.0])
    assert (r.n_genuine, r.n_impostor) == (2, 8)
    # k=0: > 0.5 -> both ; k=1 and 2 -> >= 0.5 both ; k=4 -> >= 0 both ; all
    np.testing.assert_allclose(r.rates, [1, 1, 1, 1, 1])
    x2 = x.copy()
    x2[3] = [np.cos(np.radians(-60)), np.sin(np.radians(-60))]  # genuine (2,3) becomes cos 150
    r2 = verification_rates(x2, labels, [0.0, 0.25, 0.5, 1.0])
    # impostors now: 0.5 (0,3) (1,3), 0 (0,2) (1,2), -1 x2, -0.5 (3,4), 0 (2,4)
    np.testing.assert_allclose(r2.rates, [0.5, 0.5, 0.5, 1.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_on_random_features(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 120, size=700)
    centres = rng.standard_normal((120, 32)).astype(np.float32)
    x = rng.standard_normal((700, 32)).astype(np.float32) + 1.5 * centres[labels]
    fars = np.r_[VERIFICATION_FARS, 0.05, 0.3, 0.9, 1.0]
    np.testing.assert_array_equal(verification_rates(x, labels, fars).rates,
                                  naive.verification(x, labels, fars))


def test_subset_and_recut_match_naive():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 50, size=400)
    x = rng.standard_normal((400, 16)).astype(np.float32)
    pairs = PairScores(x, labels, max_far=1e-4, block=64)  # cut far too high for FAR 0.2
    subset = rng.choice(400, size=250, replace=False)
    fars = [0.0, 1e-3, 0.01, 0.2]
    np.testing.assert_array_equal(pairs.evaluate(subset, fars).rates,
                                  naive.verification(x[np.sort(subset)], labels[np.sort(subset)], fars))


def test_bad_features():
    x = np.ones((4, 3), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(ProtocolError, match="NaN"):
        verification_rates(x, np.array([0, 0, 1, 1]), [0.1])
    with pytest.raises(ProtocolError, match="labels"):
        verification_rates(np.eye(4), np.array([0, 0, 1]), [0.1])
    with pytest.raises(ProtocolError, match="genuine"):
        verification_rates(np.eye(4), np.arange(4), [0.1])


def test_column_scores_from_the_same_pass():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 30, size=300)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    columns = np.array([5, 0, 299, 17, 150])
    pairs = PairScores(x, labels, max_far=0.01, block=37, columns=columns)
    xn = naive.normalize(x).astype(np.float64)
    np.testing.assert_allclose(pairs.column_scores, xn @ xn[columns].T, rtol=0, atol=1e-12)
