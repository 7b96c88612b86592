import numpy as np
import pytest
import scipy.io

from tailface.errors import ProtocolError
from tailface.eval.blufr import evaluate_blufr, load_blufr_config
from tailface.paths import faces_root

from . import naive

REAL = faces_root() / "blufr" / "blufr_lfw_config.mat"


def cells(arrays):
    c = np.empty((len(arrays), 1), dtype=object)
    for i, a in enumerate(arrays):
        c[i, 0] = (np.asarray(a) + 1).reshape(-1, 1).astype(np.float64)   # 1-based, MATLAB style
    return c


def tiny_config(tmp_path, seed=0, trials=3):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(40), rng.integers(1, 6, size=40))
    n = len(labels)
    names = np.empty((n, 1), dtype=object)
    for i in range(n):
        names[i, 0] = np.array([f"P{labels[i]:02d}_{i:04d}.jpg"])
    test, gal, prob, train = [], [], [], []
    for _ in range(trials):
        test_ids = rng.choice(40, size=30, replace=False)
        t = np.flatnonzero(np.isin(labels, test_ids))
        gal_ids = test_ids[:12]
        g = np.array([np.flatnonzero(labels == c)[0] for c in gal_ids])
        test.append(t), gal.append(g), prob.append(np.setdiff1d(t, g)), train.append(np.setdiff1d(np.arange(n), t))
    path = tmp_path / "cfg.mat"
    scipy.io.savemat(path, {"imageList": names, "labels": (labels + 1).reshape(-1, 1),
                            "trainIndex": cells(train), "testIndex": cells(test),
                            "galIndex": cells(gal), "probIndex": cells(prob),
                            "devTrainIndex": (np.arange(10) + 1).reshape(-1, 1),
                            "devTestIndex": (np.arange(10, n) + 1).reshape(-1, 1)})
    return path, labels


def test_tiny_config_matches_naive(tmp_path):
    path, labels = tiny_config(tmp_path)
    config = load_blufr_config(path)
    assert len(config.trials) == 3 and config.image_list[0].endswith(".jpg")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((len(labels), 8)) + 1.2 * rng.standard_normal((40, 8))[labels]
    vf, of, ranks = [0, 1e-3, 1e-2, 0.1], [0, 1e-2, 0.1, 1.0], [1, 5]
    r = evaluate_blufr(x, config, verification_fars=vf, openset_fars=of, ranks=ranks)
    vr, dirs = [], []
    for t in config.trials:
        vr.append(naive.verification(x[t.test], config.labels[t.test], vf))
        dirs.append(naive.openset(x[t.gallery], config.labels[t.gallery], x[t.probe],
                                  config.labels[t.probe], of, ranks))
    vr, dirs = np.array(vr), np.array(dirs)
    np.testing.assert_array_equal(r["per_trial"]["vr_far_0.1%"], vr[:, 1])
    np.testing.assert_array_equal(r["per_trial"]["dir_far_1%_rank1"], dirs[:, 0, 1])
    rep = r["report"]["vr_far_0.1%"]
    assert rep["mean"] == pytest.approx(vr[:, 1].mean())
    assert rep["std"] == pytest.approx(vr[:, 1].std(ddof=1))
    assert rep["mean_minus_std"] == pytest.approx(rep["mean"] - rep["std"])
    np.testing.assert_allclose(r["openset_curve"]["mean"], dirs.mean(0))
    dev = config.dev_test
    assert r["development"]["vr_far_0.1%"] == naive.verification(x[dev], config.labels[dev], [1e-3])[0]


def test_rows_matched_by_image_id(tmp_path):
    path, labels = tiny_config(tmp_path)
    config = load_blufr_config(path)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((len(labels), 8))
    kw = dict(verification_fars=[1e-3, 1e-2], openset_fars=[1e-2], ranks=[1])
    ref = evaluate_blufr(x, config, **kw)
    perm = rng.permutation(len(labels))
    ids = [f"P{labels[i]:02d}/{config.image_list[i]}" for i in perm]   # folder/file ids, shuffled
    assert evaluate_blufr(x[perm], config, image_ids=ids, **kw)["per_trial"] == ref["per_trial"]
    with pytest.raises(ProtocolError, match="have no feature row"):
        evaluate_blufr(x[perm][1:], config, image_ids=ids[1:], **kw)
    with pytest.raises(ProtocolError, match="not in the protocol"):
        evaluate_blufr(np.vstack([x, x[:1]]), config, image_ids=config.image_list + ["Other_0001.jpg"], **kw)
    with pytest.raises(ProtocolError, match="feature rows"):
        evaluate_blufr(x[:-1], config, **kw)
    bad = x.copy()
    bad[5, 0] = np.inf
    with pytest.raises(ProtocolError, match="NaN or inf"):
        evaluate_blufr(bad, config, **kw)


def test_not_a_blufr_mat(tmp_path):
    p = tmp_path / "other.mat"
    scipy.io.savemat(p, {"imageList": np.zeros((2, 1)), "labels": np.ones((2, 1))})
    with pytest.raises(ProtocolError, match="other.mat: not a BLUFR configuration.*testIndex"):
        load_blufr_config(p)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all")
    with pytest.raises(ProtocolError, match="junk.mat"):
        load_blufr_config(junk)


@pytest.mark.skipif(not REAL.is_file(), reason=f"real BLUFR configuration absent ({REAL})")
def test_real_config_structure():
    c = load_blufr_config(REAL)
    assert len(c.image_list) == 13233 and c.image_list[0] == "Aaron_Eckhart_0001.jpg"
    assert len(np.unique(c.labels)) == 5749 and len(c.trials) == 10
    for t in c.trials:
        assert len(t.gallery) == 1000 and len(np.unique(c.labels[t.gallery])) == 1000
        assert 9000 < len(t.test) < 10500
        assert sorted(np.r_[t.gallery, t.probe].tolist()) == sorted(t.test.tolist())
        assert not np.isin(t.train, t.test).any()
    assert (len(c.dev_train), len(c.dev_test)) == (521, 673)
