"""The super-class quality measures on a hand-computed case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tailface.evidence.superclasses import cell_quality, group_quality

# four classes, two images each at the class mean +- (0, 0.1); classes 0 and 1 nearly coincide
MEANS = np.array([[0.0, 0.0], [0.05, 0.0], [10.0, 0.0], [11.0, 0.0]])
FEATURES = np.concatenate([MEANS + [0.0, 0.1], MEANS - [0.0, 0.1]])
LABELS = np.array([0, 1, 2, 3, 0, 1, 2, 3])
SUPER = np.array([7, 7, 3, 3])  # {0, 1} and {2, 3}


def test_hand_computed_case():
    q = group_quality(FEATURES, LABELS, SUPER)
    assert q["classes"] == 4 and q["super_classes"] == 2 and q["images_scored"] == 8
    # centroids (0.025, 0) and (10.5, 0): 2 * 0.025^2 + 2 * 0.5^2
    assert q["inertia"] == pytest.approx(0.50125)
    # every class's nearest other class is in its super class; chance = 0.5^2 + 0.5^2
    assert q["look_alike_purity"] == 1.0 and q["chance_purity"] == 0.5
    # an image of class 0 at (0, 0.1): its class mean without it is (0, -0.1), 0.04 away, but class 1's
    # mean (0.05, 0) is 0.0125 away: wrong; the same for class 1; classes 2 and 3 are right
    assert q["identity_accuracy"] == 0.5
    assert q["super_class_accuracy"] == 1.0
    assert q["sklearn_inertia"] == pytest.approx(0.50125)  # scikit-learn (a test extra) finds the same optimum


def test_a_bad_clustering_scores_low():
    q = group_quality(FEATURES, LABELS, np.array([0, 1, 0, 1]))  # look-alikes split apart
    assert q["look_alike_purity"] == 0.0
    assert q["inertia"] > 50 * group_quality(FEATURES, LABELS, SUPER)["inertia"]


def test_reads_a_cell(tmp_path):
    # tail classes 4..7 (global ids) of groups C (4, 5, super 0) and D (6, 7, super 1)
    (tmp_path / "features").mkdir()
    (tmp_path / "cluster").mkdir()
    np.savez(tmp_path / "features" / "tail.npz", features=FEATURES, labels=LABELS + 4,
             image_ids=np.arange(8))
    (tmp_path / "cluster" / "super_classes.json").write_text(json.dumps(
        {"tail_classes": [4, 5, 6, 7], "super_of_tail": [0, 0, 1, 1], "group_of_super": ["C", "D"]}))
    q = cell_quality(tmp_path)
    assert set(q) == {"C", "D"}
    assert q["C"]["identity_accuracy"] == 0.0 and q["D"]["identity_accuracy"] == 1.0  # C = the look-alikes
    assert q["C"]["super_classes"] == 1 and q["C"]["super_class_accuracy"] == 1.0
