import numpy as np
import pytest

from tailface.errors import DataError, ProtocolError
from tailface.eval.megaface import (
    cmc_from_top,
    lfw_proxy_split,
    megaface_identification,
    synthetic_distractors,
    top_distractor_scores,
)
from tailface.eval.megaface_io import read_megaface_feature, write_megaface_feature


def unit(deg):
    r = np.radians(np.asarray(deg, float))
    return np.stack([np.cos(r), np.sin(r)], 1)


def test_hand_worked_ranks():
    probes, labels = unit([0, 10, 30]), np.zeros(3, int)
    distractors = unit([5, 100, -20])
    # (probe, mate) ranks worked by hand: (0,10)->2 (0,30)->3 (10,0)->2 (10,30)->2 (30,0)->2 (30,10)->1
    r = megaface_identification(probes, labels, distractors, counts=(3,))
    assert r["distractor_counts"] == [3]
    np.testing.assert_allclose(r["cmc"][0][:3], [1 / 6, 5 / 6, 1.0])
    assert r["rank1"][0] == pytest.approx(1 / 6)


def test_distractor_tying_the_mate_ranks_ahead():
    probes, labels = np.array([[1.0, 0], [0, 1.0]]), np.array([4, 4])
    distractors = np.array([[0, -1.0], [-1.0, 0]])   # each ties one mate score (0) exactly
    cmc = megaface_identification(probes, labels, distractors, counts=(2,))["cmc"][0]
    assert cmc[0] == 0.0 and cmc[1] == 1.0


def test_chunked_top_k_matches_brute_force_on_prefixes():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((30, 8)).astype(np.float32)
    d = rng.standard_normal((500, 8)).astype(np.float32)
    tops = top_distractor_scores(p, d, counts=(7, 100, 500), k=10, chunk=64)
    for n, top in tops.items():
        brute = -np.sort(-(p @ d[:n].T), axis=1)[:, :10]
        np.testing.assert_allclose(top[:, : min(10, n)], brute, rtol=1e-5, atol=1e-6)
        assert np.all(np.isneginf(top[:, n:]))
    with pytest.raises(ProtocolError, match="500 distractors"):
        top_distractor_scores(p, d, counts=(600,))


def test_cmc_counts_every_mate_probe_pair():
    probes = unit([0, 40, 80, 200])
    labels = np.array([1, 1, 1, 2])                  # identity 2 has one image: no pairs
    top = np.full((4, 10), -np.inf, np.float32)     # no distractors: every pair hits at rank 1
    np.testing.assert_allclose(cmc_from_top(probes, labels, top), np.ones(10))


def test_seeded_nested_subsets_and_synthetic_stream():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(20), 3)
    probes = rng.standard_normal((60, 16)) + 2 * rng.standard_normal((20, 16))[labels]
    d = rng.standard_normal((1000, 16))
    a = megaface_identification(probes, labels, d, counts=(10, 100, 1000, 10_000), seed=3)
    b = megaface_identification(probes, labels, d, counts=(10, 100, 1000), seed=3)
    assert a == b and a["distractor_counts"] == [10, 100, 1000]
    assert all(x >= y for x, y in zip(a["rank1"], a["rank1"][1:]))   # more distractors never help
    s1 = np.concatenate(list(synthetic_distractors(300, 16, seed=5, chunk=128)))
    s2 = np.concatenate(list(synthetic_distractors(300, 16, seed=5, chunk=128)))
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(np.linalg.norm(s1, axis=1), 1, rtol=1e-5)


def test_lfw_proxy_split():
    labels = np.array([0, 0, 0, 0, 1, 2, 2, 3, 1, 0])
    probe, distractor = lfw_proxy_split(labels, min_images=4)
    assert probe.tolist() == [0, 1, 2, 3, 9] and distractor.tolist() == [7]


def test_devkit_file_round_trip(tmp_path):
    v = np.linspace(-1, 1, 512).astype(np.float32)
    path = write_megaface_feature(tmp_path / "a.jpg_tailface.bin", v)
    raw = path.read_bytes()
    assert np.frombuffer(raw[:16], "<i4").tolist() == [512, 1, 4, 5] and len(raw) == 16 + 4 * 512
    np.testing.assert_array_equal(read_megaface_feature(path), v)
    (tmp_path / "bad.bin").write_bytes(raw[:100])
    with pytest.raises(DataError, match="bad.bin"):
        read_megaface_feature(tmp_path / "bad.bin")
    with pytest.raises(DataError, match="non-finite"):
        write_megaface_feature(tmp_path / "nan.bin", [np.nan, 1.0])
