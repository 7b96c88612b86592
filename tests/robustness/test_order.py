"""A protocol's result depends only on which feature belongs to which image, never on the order of
the features file's rows (issue 14: the MegaFace proxy changed when rows and ids were permuted
together)."""

from __future__ import annotations

import numpy as np
import pytest

from tailface.eval.api import evaluate_protocols
from tailface.eval.protocols import EvalOptions, Features


def lfw_like(seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for person in range(8):  # probe identities, 4-6 images
        for k in range(rng.integers(4, 7)):
            ids.append(f"P{person}/P{person}_{k + 1:04d}.jpg")
            labels.append(person)
    for single in range(150):  # distractors: one image each
        ids.append(f"S{single:03d}/S{single:03d}_0001.jpg")
        labels.append(100 + single)
    centers = rng.standard_normal((300, 16))
    x = centers[np.asarray(labels)] + 1.5 * rng.standard_normal((len(ids), 16))
    return x.astype(np.float32), ids, np.asarray(labels)


@pytest.mark.parametrize("protocol", ["megaface-proxy", "lfw", "synthetic"])
def test_permuting_rows_and_ids_together_changes_nothing(protocol, tmp_path):
    x, ids, labels = lfw_like()
    (tmp_path / "lfw").mkdir()
    (tmp_path / "lfw" / "pairs.txt").write_text("2 2\nP0 1 2\nP1 1 3\nP0 1 P1 1\nP2 1 P3 2\n"
                                                "P2 1 4\nP3 2 3\nP4 1 P5 1\nP6 1 S001 1\n")
    options = EvalOptions(faces_root=tmp_path)
    reference = evaluate_protocols(Features(x, ids, labels, "f.npz"), [protocol], options)
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(len(ids))
        shuffled = Features(x[perm], [ids[i] for i in perm], labels[perm], "f.npz")
        assert evaluate_protocols(shuffled, [protocol], options) == reference, seed


def test_megaface_proxy_refuses_duplicate_ids():
    from tailface.errors import ProtocolError

    x, ids, labels = lfw_like()
    with pytest.raises(ProtocolError, match="1 duplicate image ids"):
        evaluate_protocols(Features(np.concatenate([x, x[:1]]), ids + ids[:1], None, "f.npz"), ["megaface-proxy"])
