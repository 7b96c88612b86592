"""Checks on the real face data; skipped when ``faces_root()`` is absent."""

import numpy as np
import pytest

from tailface.data.align import ARCFACE_TEMPLATE_112, align_face, apply_transform, estimate_similarity
from tailface.data.landmarks import read_landmarks
from tailface.paths import faces_root

ROOT = faces_root()
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (ROOT / "lfw" / "landmarks.csv").is_file(),
                       reason=f"real face data not found at {ROOT} (set $TAILFACE_FACES)"),
]


@pytest.mark.parametrize("csv,rows,without", [
    ("lfw/landmarks.csv", 13233, 0),
    ("celeba/img_align_celeba_89x109_landmarks.csv", 10000, 16),
    ("celeba/wild_crops/landmarks.csv", 6276, 0),
])
def test_landmark_csvs_parse(csv, rows, without):
    table = read_landmarks(ROOT / csv)
    assert len(table) == rows and (~table.found).sum() == without
    pts = table.points[table.found]
    assert (pts[:, 0, 0] < pts[:, 1, 0]).mean() > 0.99  # left eye left of right eye in the image


def test_a_few_lfw_images_align():
    from tailface.data.images import read_image

    table = read_landmarks(ROOT / "lfw" / "landmarks.csv")
    for k in range(0, len(table), 2647):
        image = read_image(ROOT / "lfw" / "lfw-deepfunneled" / table.identities[k] / table.files[k])
        assert image.shape == (250, 250, 3)
        aligned = align_face(image, table.points[k])
        assert aligned.shape == (112, 112, 3) and aligned.std() > 10
        matrix = estimate_similarity(table.points[k], ARCFACE_TEMPLATE_112)
        # MTCNN points fit the template by a similarity to within a few pixels
        assert np.abs(apply_transform(matrix, table.points[k]) - ARCFACE_TEMPLATE_112).max() < 8
