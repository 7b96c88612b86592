import numpy as np
import pytest

from tailface.errors import ProtocolError
from tailface.eval.openset import open_set_identification

from . import naive

R = np.sqrt(0.28)


def hand_case():
    gallery = np.eye(4)[:3]               # identities 1, 2, 3 along the first three axes
    gallery_labels = np.array([1, 2, 3])
    probes = np.array([
        [0.6, 0.8, 0, 0],    # id 1: mate 0.6, beaten by gallery 2 -> rank 2
        [0, 0.8, 0.6, 0],    # id 2: mate 0.8, rank 1
        [0, 0, 0.6, 0.8],    # id 3: mate 0.6, rank 1
        [0.6, 0.6, 0, R],    # id 1: ties gallery 2, which comes later -> rank 1 (stable order)
        [0.6, 0.6, 0, R],    # id 2: ties gallery 1, which comes earlier -> rank 2
        [0.8, 0, 0, 0.6],    # impostor, max 0.8
        [0, 0.5, 0, np.sqrt(0.75)],  # impostor, max 0.5
        [0, 0, 0, 1.0],      # impostor, max 0
    ])
    probe_labels = np.array([1, 2, 3, 1, 2, 9, 7, 8])
    return gallery, gallery_labels, probes, probe_labels


def test_hand_built_dir():
    fars = [0.0, 1 / 3, 0.4, 0.5, 1.0]
    r = open_set_identification(*hand_case(), fars=fars, ranks=[1, 2])
    assert (r.n_genuine_probes, r.n_impostor_probes) == (5, 3)
    # FAR 0: mate > 0.8 -> none. k=1 (FAR 1/3, 0.4 -> round(1.2)): >= 0.8 -> probe 2 only.
    # FAR 0.5: round(1.5) = 2 -> threshold 0.5: all mates pass; rank 1: probes 2, 3, 4.
    expected = np.array([[0, 1 / 5, 1 / 5, 3 / 5, 3 / 5],
                         [0, 1 / 5, 1 / 5, 5 / 5, 5 / 5]])
    np.testing.assert_allclose(r.dir, expected)
    assert r.at(0.5, 1) == pytest.approx(0.6)


def test_matches_naive_with_several_gallery_images_per_identity():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((60, 16))
    gl = rng.integers(0, 40, size=70)        # repeated gallery identities
    pl = rng.integers(0, 60, size=300)       # ids >= 40 never in the gallery
    g = centres[gl] + rng.standard_normal((70, 16))
    p = centres[pl] + rng.standard_normal((300, 16))
    fars, ranks = [0, 0.01, 0.1, 0.3, 1.0], [1, 2, 5, 20]
    r = open_set_identification(g, gl, p, pl, fars, ranks)
    np.testing.assert_array_equal(r.dir, naive.openset(g, gl, p, pl, fars, ranks))
    gu = np.arange(40)                       # unique gallery identities: the lookup path
    g1 = centres[gu] + rng.standard_normal((40, 16))
    np.testing.assert_array_equal(open_set_identification(g1, gu, p, pl, fars, ranks).dir,
                                  naive.openset(g1, gu, p, pl, fars, ranks))


def test_needs_both_probe_kinds():
    g, gl, p, pl = hand_case()
    with pytest.raises(ProtocolError, match="impostor probes"):
        open_set_identification(g, gl, p[:5], pl[:5], [0.1])
