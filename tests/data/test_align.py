import numpy as np
import pytest

from tailface.data.align import (
    ARCFACE_TEMPLATE_112,
    align_face,
    apply_transform,
    arcface_template,
    center_crop,
    estimate_similarity,
    warp_affine,
)
from tailface.errors import DataError


def similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, [[tx], [ty]]])


def blob_image(points, shape, sigma=2.0):
    """Dark image with one Gaussian spot per point (integer-centre pixel convention)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    img = np.zeros(shape[:2])
    for x, y in points:
        img += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
    img = np.clip(img * 255, 0, 255).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


def spot_centres(image, guesses, radius=6):
    """Intensity-weighted centroid of the spot near each guess."""
    gray = image[:, :, 0].astype(np.float64)
    out = []
    for gx, gy in guesses:
        x0, y0 = int(round(gx)), int(round(gy))
        ys, xs = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
        w = gray[ys, xs]
        out.append([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
    return np.array(out)


def test_estimate_similarity_is_exact_on_noiseless_points():
    true = similarity(23.0, 0.71, -12.5, 40.25)
    src = np.random.default_rng(0).uniform(0, 200, size=(5, 2))
    dst = apply_transform(true, src)
    np.testing.assert_allclose(estimate_similarity(src, dst), true, atol=1e-10)


def test_estimate_similarity_least_squares_beats_perturbations():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = apply_transform(similarity(-10, 1.2, 3, 4), src) + rng.normal(0, 2.0, size=(5, 2))
    best = estimate_similarity(src, dst)
    err = ((apply_transform(best, src) - dst) ** 2).sum()
    for angle, scale, tx in [(0.5, 1.0, 0.0), (0.0, 1.01, 0.0), (0.0, 1.0, 0.3)]:
        nudge = similarity(angle, scale, tx, 0.0)
        composed = nudge[:, :2] @ best
        composed[:, 2] += nudge[:, 2]
        assert ((apply_transform(composed, src) - dst) ** 2).sum() > err


def test_mirrored_points_do_not_produce_a_reflection():
    mirrored = ARCFACE_TEMPLATE_112 * np.array([-1.0, 1.0]) + np.array([112.0, 0.0])
    matrix = estimate_similarity(mirrored, ARCFACE_TEMPLATE_112)
    assert np.linalg.det(matrix[:, :2]) > 0
    # a reflection would fit exactly; the proper similarity cannot
    assert np.abs(apply_transform(matrix, mirrored) - ARCFACE_TEMPLATE_112).max() > 1.0


def test_align_face_puts_landmarks_on_the_template():
    true = similarity(17.0, 0.6, 25.0, -10.0)  # maps source image points to the 112 template
    inverse_linear = np.linalg.inv(true[:, :2])
    src_points = (ARCFACE_TEMPLATE_112 - true[:, 2]) @ inverse_linear.T
    image = blob_image(src_points, (240, 260, 3), sigma=3.0)
    np.testing.assert_allclose(estimate_similarity(src_points, ARCFACE_TEMPLATE_112), true, atol=1e-9)
    aligned = align_face(image, src_points)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    error = np.abs(spot_centres(aligned, ARCFACE_TEMPLATE_112) - ARCFACE_TEMPLATE_112).max()
    assert error < 0.5
    # far below 0.5: a half-pixel convention mistake alone would cost about 0.3 px here
    assert error < 0.05


def test_warp_affine_uses_integer_pixel_centres():
    image = blob_image([(20.0, 30.0)], (64, 64, 3))
    moved = warp_affine(image, similarity(0, 1.0, 5.0, -7.0), (64, 64))
    np.testing.assert_allclose(spot_centres(moved, [(25.0, 23.0)])[0], [25.0, 23.0], atol=0.05)


def test_template_scales_with_output_size():
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2)
    image = blob_image(ARCFACE_TEMPLATE_112 * 2, (224, 224, 3), sigma=3.0)
    aligned = align_face(image, ARCFACE_TEMPLATE_112 * 2, output_size=56)
    assert aligned.shape == (56, 56, 3)
    error = np.abs(spot_centres(aligned, arcface_template(56), radius=3) - arcface_template(56)).max()
    assert error < 0.1  # a half-pixel convention mistake would cost about 0.375 px at scale 1/4


def test_align_face_rejects_missing_landmarks():
    with pytest.raises(DataError, match="landmarks"):
        align_face(np.zeros((50, 50, 3), np.uint8), np.full((5, 2), np.nan))


def test_center_crop_takes_the_middle_square():
    image = np.zeros((100, 140, 3), np.uint8)
    image[:, 20:120] = 200  # the centred 100x100 square
    crop = center_crop(image, output_size=100)
    assert crop.shape == (100, 100, 3) and (crop == 200).all()
    assert center_crop(image, 50).shape == (50, 50, 3)
