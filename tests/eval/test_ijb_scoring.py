"""IJB figures against the naive float64 reference (tests/eval/ijb_naive.py) on a synthetic release:
template pooling, pair scores, TAR exact and at the nearest ROC point, the ROC itself (also against
scikit-learn), 1:N under both gallery and both threshold conventions, with ties. Each convention's
test also shows that the reference with that convention changed gives other numbers, so a change
in tailface's code would fail here."""

import math

import numpy as np
import pytest
from tests.eval import ijb_naive as naive

from tailface.data.ijb_release import IjbRelease
from tailface.eval.ijb import evaluate_ijb
from tailface.eval.ijb_identification import identification
from tailface.eval.ijb_synthetic import write_synthetic_ijb
from tailface.eval.ijb_templates import PoolingMode, template_features
from tailface.eval.ijb_verification import verify_pairs
from tailface.eval.pair_scores import gather_scores, pair_scores
from tailface.eval.roc_points import RocPoints, nearest_point, roc_points

FARS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
FPIRS = [0.01, 0.1]
RANKS = [1, 5, 10]
DYADIC = [np.r_[np.array(s) * 0.5, np.zeros(4)][np.argsort(p)] for s, p in zip(
    [(1, 1, 1, 1), (1, -1, 1, 1), (1, 1, -1, -1), (-1, 1, 1, -1), (1, 1, 1, -1), (-1, -1, 1, 1)],
    [np.random.default_rng(k).permutation(8) for k in range(6)])]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("ijb") / "IJBC"
    truth = write_synthetic_ijb(root, "ijbc", enrolled=5, unenrolled=3, frames=(1, 2, 4),
                                scores=(0.25, 0.5, 0.75, 1.0), image_size=24)
    return IjbRelease.open("ijbc", root.parent), truth, naive.read_release(root, "ijbc")


def random_features(truth, templates, dim=16, seed=0):
    """Identity centre + noise per image: realistic, tie-free scores."""
    rng = np.random.default_rng(seed)
    centres = {s: rng.standard_normal(dim) for s in set(truth.template_subject.values())}
    return np.array([0.7 * centres[truth.template_subject[t]] + rng.standard_normal(dim) for t in templates],
                    np.float32)


def dyadic_features(truth, templates, seed=0):
    """Every image of a template is c x v, v a unit vector of four +-0.5 (its subject's with
    probability 0.7), c in {1, 2}: with detector scores in {0.25 .. 1} and 1, 2 or 4 frames per
    media, every template feature is exactly v and every score a multiple of 1/4: ties everywhere,
    computed exactly by any summation order."""
    rng = np.random.default_rng(seed)
    subjects = sorted(set(truth.template_subject.values()))
    pick = {t: DYADIC[subjects.index(s) % len(DYADIC)] if rng.uniform() < 0.7 else DYADIC[rng.integers(len(DYADIC))]
            for t, s in truth.template_subject.items()}
    return np.array([pick[t] * rng.choice([1.0, 2.0]) for t in templates], np.float32)


def naive_figures(rel, features, **pool_options):
    pooled = naive.pool(features, rel["scores"], rel["templates"], rel["medias"], **pool_options)
    scores = naive.pair_scores(pooled, rel["pairs"])
    labels = np.array([y for _, _, y in rel["pairs"]])
    return pooled, scores, scores[labels == 1], scores[labels == 0]


@pytest.mark.parametrize("norm,detector", [("keep", True), ("unit", True), ("keep", False), ("unit", False)])
def test_pooling_matches_naive_and_a_changed_convention_is_caught(release, norm, detector):
    rel_obj, truth, rel = release
    x = random_features(truth, rel["templates"])
    ids, feats = template_features(x, rel_obj.images.scores, rel_obj.images.templates, rel_obj.images.medias,
                                   PoolingMode(norm, detector), rows_per_block=7)  # several blocks of whole templates
    pooled = naive.pool(x, rel["scores"], rel["templates"], rel["medias"], norm, detector)
    assert ids.tolist() == sorted(pooled)
    np.testing.assert_allclose(feats, np.array([pooled[t] for t in ids]), rtol=0, atol=1e-13)
    for change in ({"media_reduce": "sum"}, {"normalize": False}, {"norm": "unit" if norm == "keep" else "keep"},
                   {"detector": not detector}):
        other = naive.pool(x, rel["scores"], rel["templates"], rel["medias"], **{"norm": norm, "detector": detector,
                                                                                  **change})
        assert not np.allclose(feats, np.array([other[t] for t in ids]), atol=1e-6), change


def test_template_mean_or_sum_is_the_same_after_normalisation(release):
    """Why media are summed and not averaged in a template makes no difference to a cosine: noted in
    docs/evaluation.md; the test pins it so the docs stay true."""
    _, truth, rel = release
    x = random_features(truth, rel["templates"])
    a = naive.pool(x, rel["scores"], rel["templates"], rel["medias"])
    b = naive.pool(x, rel["scores"], rel["templates"], rel["medias"], template_reduce="mean")
    assert all(np.allclose(a[t], b[t], atol=1e-14) for t in a)


def test_pair_scores_gemm_and_gather_agree_in_any_pair_order():
    rng = np.random.default_rng(1)
    t = rng.standard_normal((300, 32))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    first, second = rng.integers(0, 300, 5000), rng.integers(0, 300, 5000)
    for a, b in ((first, second), (first, second // 15)):  # the second: fewer templates on the right (swapped)
        want = np.array([t[i] @ t[j] for i, j in zip(a, b)])
        for block in (64, 1000, 1 << 20):
            for density, gram in ((64, 1 << 23), (64, 100), (1e-9, 1 << 23)):  # GEMM, GEMM in row groups, gather
                got = pair_scores(t, a, b, block=block, density=density, gram=gram)
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)
    want = np.array([t[i] @ t[j] for i, j in zip(first, second)])
    np.testing.assert_allclose(gather_scores(t, first, second), want, rtol=0, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_points_equal_scikit_learn_and_the_naive_roc(seed):
    rng = np.random.default_rng(seed)
    genuine = np.round(rng.normal(0.5, 0.2, 60), 2)      # rounded: many ties, also across the classes
    impostor = np.round(rng.normal(0.0, 0.2, 900), 2)
    roc = roc_points(genuine, impostor)
    fpr, tpr, thr = naive.roc(genuine, impostor)
    assert roc.fpr.tolist() == fpr and roc.tpr.tolist() == tpr and roc.thresholds.tolist() == thr
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    f, t, h = sklearn_metrics.roc_curve(labels, np.r_[genuine, impostor])
    assert np.array_equal(f, roc.fpr) and np.array_equal(t, roc.tpr) and np.array_equal(h, roc.thresholds)


def test_nearest_reading_takes_the_last_of_equally_near_points():
    """A hand case. Scores (genuine G, impostor I) descending: G 0.9, I 0.8, G 0.7, G 0.6, I 0.5, I 0.4,
    I 0.3, G 0.2. Points after dropping: (0,0) (0,1/4) (1/4,1/4) (1/4,3/4) (1,3/4) (1,1); the collinear
    (1/4,2/4), (2/4,3/4), (3/4,3/4) are gone. At FAR 0.25 two points are equally near (distance 0):
    the last, TAR 3/4, is read (the first would give 1/4); at FAR 0 -> 1/4; at FAR 0.6 the nearest is
    fpr 1/4 -> 3/4; at FAR 0.9 fpr 1, the last of its two points: 1."""
    genuine, impostor = [0.9, 0.7, 0.6, 0.2], [0.8, 0.5, 0.4, 0.3]
    roc = roc_points(genuine, impostor)
    assert roc.fpr.tolist() == [0, 0, 0.25, 0.25, 1, 1] and roc.tpr.tolist() == [0, 0.25, 0.25, 0.75, 0.75, 1]
    for far, tar in ((0.25, 0.75), (0.0, 0.25), (0.6, 0.75), (0.9, 1.0), (1e-6, 0.25)):
        assert roc.tpr[nearest_point(roc, far)] == tar, far
    fpr, tpr, _ = naive.roc(genuine, impostor)
    assert naive.tar_nearest(fpr, tpr, [0.25, 0.0, 0.9]) == [0.75, 0.25, 1.0]
    assert naive.tar_nearest(fpr, tpr, [0.25, 0.0, 0.9], last_of_equal=False) == [0.25, 0.0, 0.75]  # caught


def test_nearest_point_reading_depends_on_dropping():
    """Dropping collinear points changes which point is nearest: G 0.9, I 0.8 .. 0.5, G 0.1. With the
    points of the horizontal run kept, FAR 0.6 reads fpr 0.5 (TAR 1/2); dropped, the nearest is fpr 1,
    whose last point has TAR 1."""
    genuine, impostor = [0.9, 0.1], [0.8, 0.7, 0.6, 0.5]
    roc = roc_points(genuine, impostor)
    full = naive.roc(genuine, impostor, drop_intermediate=False)
    kept = RocPoints(np.array(full[0]), np.array(full[1]), np.array(full[2]), 2, 4)
    assert roc.tpr[nearest_point(roc, 0.6)] == 1.0 and kept.tpr[nearest_point(kept, 0.6)] == 0.5


@pytest.mark.parametrize("features", ["random", "dyadic"])
def test_verification_figures_equal_the_naive_reference(release, features):
    rel_obj, truth, rel = release
    x = (random_features if features == "random" else dyadic_features)(truth, rel["templates"])
    result, figures = evaluate_ijb(x, rel["names"], rel_obj)
    _, scores, genuine, impostor = naive_figures(rel, x)
    if features == "dyadic":
        assert np.array_equal(figures.scores, scores) and len(np.unique(scores)) < len(scores) / 5  # exact, tied
    else:
        np.testing.assert_allclose(figures.scores, scores, rtol=0, atol=1e-14)
    v = result["verification"]
    assert v["tar_exact"] == naive.tar_exact(genuine, impostor, FARS)
    fpr, tpr, _ = naive.roc(genuine, impostor)
    assert v["tar_nearest"] == naive.tar_nearest(fpr, tpr, FARS)
    assert v["n_genuine"] == len(genuine) and v["n_impostor"] == len(impostor) == v["pairs"] - len(genuine)
    if features == "dyadic":  # ties at the thresholds: accepting them (>=) is the rule, > would differ
        assert v["tar_exact"] != naive.tar_exact(genuine, impostor, FARS, accept_ties=False)


def test_exact_tar_hand_computed():
    """1000 impostors 0.000 .. 0.999, genuine 0.9985, 0.9975, 0.9905, 0.5: FAR 1e-3 -> k = 1, threshold
    0.999: none accepted; FAR 1e-2 -> k = 10, threshold 0.990: three; FAR 1e-6 -> k = 0: strictly
    above 0.999: none. The nearest ROC point at FAR 1e-3 is the last point with fpr 0.001, which
    also takes the genuine 0.9985 lying between the first and the second impostor: 1 of 4."""
    impostor = np.arange(1000) / 1000
    genuine = np.array([0.9985, 0.9975, 0.9905, 0.5])
    t = np.eye(2)
    feats = np.r_[[[np.cos(np.arccos(s)), np.sin(np.arccos(s))] for s in np.r_[genuine, impostor]]]
    first = np.zeros(len(feats), int)
    figures = verify_pairs(np.r_[t[:1], feats], first, np.arange(1, len(feats) + 1),
                           np.r_[np.ones(4), np.zeros(1000)], [1e-6, 1e-3, 1e-2])
    assert figures.exact["tar"] == [0.0, 0.0, 0.75] and figures.exact["false_alarms"] == [0, 1, 10]
    assert figures.nearest["tar"][1] == 0.25 and figures.nearest["fpr"][1] == 0.001


def naive_search(rel, pooled, fpirs=FPIRS, **options):
    g1 = naive.search(pooled, rel["g1"], rel["probe"], fpirs, RANKS, **options)
    g2 = naive.search(pooled, rel["g2"], rel["probe"], fpirs, RANKS, **options)
    merged = naive.search(pooled, {**rel["g1"], **rel["g2"]}, rel["probe"], fpirs, RANKS, merged=True, **options)
    return g1, g2, merged


@pytest.mark.parametrize("features", ["random", "dyadic"])
def test_identification_equals_the_naive_reference(release, features):
    rel_obj, truth, rel = release
    x = (random_features if features == "random" else dyadic_features)(truth, rel["templates"], seed=3)
    result, _ = evaluate_ijb(x, rel["names"], rel_obj)
    s = result["identification"]
    pooled = naive.pool(x, rel["scores"], rel["templates"], rel["medias"])
    g1, g2, merged = naive_search(rel, pooled)
    for name, ref in (("G1", g1), ("G2", g2)):
        got = s["separate"][name]
        assert got["rank"] == ref["rank"] and got["exact"]["tpir"] == ref["exact"]
        assert got["anchor"]["tpir"] == ref["anchor"], name
        assert got["mated_searches"] == ref["mated"] and got["hits"] == ref["hits"]
    assert s["separate"]["mean"]["exact"] == [(a + b) / 2 for a, b in zip(g1["exact"], g2["exact"])]
    assert s["separate"]["mean"]["rank"] == {k: (g1["rank"][k] + g2["rank"][k]) / 2 for k in g1["rank"]}
    assert s["separate"]["pooled_rank"] == {k: (g1["hits"][k] + g2["hits"][k]) / (g1["mated"] + g2["mated"])
                                            for k in g1["hits"]}
    assert s["merged"]["rank"] == merged["rank"] and s["merged"]["exact"]["tpir"] == merged["exact"]
    assert s["merged"]["anchor"]["tpir"] == merged["anchor"]
    assert s["merged"]["nonmated_searches"] == 3 * 2  # the unenrolled subjects' probe templates


def test_identification_conventions_are_caught():
    """Hand-made templates where each 1:N convention decides the figure; the reference with the
    convention changed gives another number than tailface."""
    v = np.eye(4)
    # gallery: templates 1 (subject 10), 2 (20), 3 (30); probe templates 11..18
    gal = {1: 10, 2: 20, 3: 30}
    feats = {1: v[0], 2: v[0], 3: v[2]}  # templates 1 and 2 identical: their scores tie
    probe = {11: 20, 12: 10, 13: 30, 14: 40, 15: 50, 16: 60, 17: 20, 18: 30}
    c = np.cos(np.r_[0.3, 0.5, 0.7, 0.9, 0.2])
    feats.update({11: v[0], 12: v[0], 13: c[0] * v[2] + np.sin(0.3) * v[3], 14: c[1] * v[2] + np.sin(0.5) * v[3],
                  15: c[1] * v[0] + np.sin(0.5) * v[1], 16: c[2] * v[2] + np.sin(0.7) * v[3],
                  17: c[4] * v[0] + np.sin(0.2) * v[1], 18: c[1] * v[2] + np.sin(0.5) * v[3]})
    g_ids = sorted(gal)
    gallery = np.array([feats[t] for t in g_ids])
    p_ids = sorted(probe)
    probes = np.array([feats[t] for t in p_ids])
    # separate galleries: A = {1, 3}, B = {2}
    out = identification(probes, np.array([probe[p] for p in p_ids]),
                         {"A": (np.array([1, 3]), gallery[[0, 2]], np.array([10, 30]), "A"),
                          "B": (np.array([2]), gallery[[1]], np.array([20]), "B")}, fpirs=[0.2, 0.5])
    merged = out["merged"]
    ref = naive.search(feats, gal, probe, [0.2, 0.5], RANKS, merged=True)
    assert merged["rank"] == ref["rank"] and merged["exact"]["tpir"] == ref["exact"]
    assert merged["anchor"]["tpir"] == ref["anchor"]
    # probe 11 (subject 20) ties with template 1, earlier in gallery order: rank 2, not 1
    assert naive.search(feats, gal, probe, [0.2], RANKS, rank_ties_before=False)["rank"] != ref["rank"]
    # non-mated tops cos 0.5, cos 0.5, cos 0.7 (14, 15, 16; a tie): FPIR 0.5 -> k = round(1.5) = 2, threshold
    # cos 0.5, which probe 18 scores against its mate: accepted by >= (TPIR 3/5), not by > (2/5)
    assert merged["exact"]["tpir"][1] == 3 / 5 and merged["exact"]["false_alarms"][1] == 2
    assert naive.search(feats, gal, probe, [0.5], RANKS, merged=True, exact_ge=False)["exact"] == [2 / 5]
    a_ref = naive.search(feats, {1: 10, 3: 30}, probe, [0.2, 0.5], RANKS)
    assert out["separate"]["A"]["anchor"]["tpir"] == a_ref["anchor"]
    assert naive.search(feats, {1: 10, 3: 30}, probe, [0.2, 0.5], RANKS, anchor_offset=0)["anchor"] != a_ref["anchor"]
    assert out["separate"]["A"]["exact"]["tpir"] != out["separate"]["A"]["anchor"]["tpir"]


def test_merged_gallery_without_nonmated_searches_reports_null(release):
    """As in the real release (every probe subject enrolled): FPIR over non-mated searches does not
    exist; the anchors' pair-level reading still gives a number."""
    rel_obj, truth, rel = release
    x = random_features(truth, rel["templates"], seed=5)
    pooled = naive.pool(x, rel["scores"], rel["templates"], rel["medias"])
    ids = sorted(pooled)
    t = np.array([pooled[i] for i in ids])
    probe = {p: s for p, s in rel["probe"].items() if s in set(rel["g1"].values()) | set(rel["g2"].values())}
    p_ids = sorted(probe)
    galleries = {name: (np.array(sorted(g)), t[np.searchsorted(ids, sorted(g))], np.array([g[k] for k in sorted(g)]),
                        name) for name, g in (("G1", rel["g1"]), ("G2", rel["g2"]))}
    out = identification(t[np.searchsorted(ids, p_ids)], np.array([probe[p] for p in p_ids]), galleries)
    assert out["merged"]["exact"]["tpir"] == [None, None] and "non-mated" in out["merged"]["exact"]["undefined"]
    ref = naive.search(pooled, {**rel["g1"], **rel["g2"]}, probe, FPIRS, RANKS, merged=True)
    assert out["merged"]["anchor"]["tpir"] == ref["anchor"] and all(v is not None for v in ref["anchor"])
    assert out["merged"]["anchor"]["pair_rank"] == [math.ceil(len(probe) * f) for f in FPIRS]
