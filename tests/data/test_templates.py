"""Alignment templates as a registry: each template puts its own reference landmarks on its
canonical positions (hand-computed), the default is bit-identical to the aligner before templates,
packs record their template, unknown names are a ConfigError listing the known ones."""

import json

import numpy as np
import pytest
from PIL import Image

from tailface.cli.main import main
from tailface.data.align import AlignedFaceSet, align_face, apply_transform, estimate_similarity, warp_affine
from tailface.data.alignment_record import faceset_alignment, read_alignment, write_alignment
from tailface.data.faceset import InMemoryFaceSet
from tailface.data.landmarks import COORD_COLUMNS
from tailface.data.templates import (
    ARCFACE_TEMPLATE_112,
    DLIB_CHIP_150,
    DLIB_MEAN_SHAPE_5,
    get_template,
    template_names,
)
from tailface.errors import ConfigError

#: for landmarks on the ArcFace template, facenet-box's crop box is [-11.7, 122.7]^2: the 112x112
#: crop (pixel edges -0.5 .. 111.5, centre 55.5) grown by 0.1 x 112 = 11.2 on each side, side 134.4.
FACENET_AT_ARCFACE_160 = (ARCFACE_TEMPLATE_112 + 11.7) * 160 / 134.4 - 0.5


def move(points, matrix):
    return apply_transform(matrix, points)


def similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    return np.hstack([scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]), [[tx], [ty]]])


def blob_image(points, shape, sigma=2.0):
    """Dark image with one Gaussian spot per point (integer-centre pixel convention)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    img = sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)) for x, y in points)
    return np.repeat(np.clip(img * 255, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


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


def test_registry_names_and_unknown_template():
    assert template_names()[:3] == ["arcface", "dlib-chip", "facenet-box"]
    assert get_template(None).name == "arcface"
    assert [get_template(n).reference_size for n in ("arcface", "dlib-chip", "facenet-box")] == [112, 150, 160]
    with pytest.raises(ConfigError, match=r"unknown alignment template 'dlib'; known: arcface, dlib-chip, facenet-box"):
        get_template("dlib")


def test_dlib_chip_points_hand_computed():
    """dlib's mean shape (68 points, [0, 1]): eye centres = mean of points 36-41 and 42-47, nose tip
    = 30, mouth corners = 48, 54; chip = (0.25 + m) / 1.5 * 150 = (0.25 + m) * 100."""
    left_eye_x = (0.121737 + 0.187122 + 0.265825 + 0.334606 + 0.260918 + 0.182743) / 6
    eye_y = (0.216423 + 0.178758 + 0.179852 + 0.231733 + 0.245099 + 0.244077) / 6
    right_eye_x = (0.645647 + 0.714428 + 0.793132 + 0.858516 + 0.79751 + 0.719335) / 6
    np.testing.assert_allclose(DLIB_MEAN_SHAPE_5, [[left_eye_x, eye_y], [right_eye_x, eye_y], [0.490127, 0.515625],
                                                   [0.254149, 0.780233], [0.726104, 0.780233]], atol=1e-12)
    np.testing.assert_allclose(DLIB_CHIP_150, [[47.549183, 46.599033], [100.476133, 46.599033], [74.0127, 76.5625],
                                               [50.4149, 103.0233], [97.6104, 103.0233]], atol=1e-6)


@pytest.mark.parametrize("name,reference,size,scale", [
    ("arcface", ARCFACE_TEMPLATE_112, 112, 1.0), ("arcface", ARCFACE_TEMPLATE_112, 56, 0.5),
    ("dlib-chip", DLIB_CHIP_150, 150, 1.0), ("dlib-chip", DLIB_CHIP_150, 300, 2.0)])
def test_similarity_templates_put_their_reference_landmarks_on_the_canonical_positions(name, reference, size, scale):
    """The reference points seen through any similarity of the image come back to the canonical
    positions (scaled about the origin by size / reference size)."""
    template = get_template(name)
    for true in (similarity(0, 1, 0, 0), similarity(23, 1.7, 40, -12), similarity(-8, 0.6, 5, 90)):
        seen = move(reference, true)
        np.testing.assert_allclose(move(seen, template.matrix(seen, size)), reference * scale, atol=1e-9)


def test_facenet_box_hand_computed():
    box = get_template("facenet-box")
    # landmarks on the ArcFace template: the box is [-11.7, 122.7]^2, resized to 160 (edges on edges)
    m = box.matrix(ARCFACE_TEMPLATE_112)
    k, t = 160 / 134.4, 11.7 * 160 / 134.4 - 0.5
    np.testing.assert_allclose(m, [[k, 0, t], [0, k, t]], atol=1e-12)
    np.testing.assert_allclose(move(ARCFACE_TEMPLATE_112, m), FACENET_AT_ARCFACE_160, atol=1e-9)
    assert FACENET_AT_ARCFACE_160[0] == pytest.approx([59.0173810, 74.9717857])   # (38.2946 + 11.7) * 1.190476 - 0.5
    # scaled and moved (no rotation): the same canonical positions; at size 80 half of the edge frame
    seen = ARCFACE_TEMPLATE_112 * 2.5 + [70.0, -30.0]
    np.testing.assert_allclose(move(seen, box.matrix(seen)), FACENET_AT_ARCFACE_160, atol=1e-9)
    np.testing.assert_allclose(move(seen, box.matrix(seen, 80)), (ARCFACE_TEMPLATE_112 + 11.7) * 80 / 134.4 - 0.5,
                               atol=1e-9)
    # a box crop undoes no rotation: a tilted face stays tilted
    tilted = move(ARCFACE_TEMPLATE_112, similarity(20, 1.0, 0, 0))
    assert box.matrix(tilted)[0, 1] == 0 and box.matrix(tilted)[1, 0] == 0


@pytest.mark.parametrize("name", ["dlib-chip", "facenet-box"])
def test_aligned_image_has_the_landmarks_on_the_canonical_positions(name):
    """End to end through the resampling: spots drawn at the landmarks land where the template says."""
    template = get_template(name)
    src = move(ARCFACE_TEMPLATE_112, similarity(0 if name == "facenet-box" else 12, 1.6, 30, 20))
    image = blob_image(src, (300, 320, 3), sigma=3.0)
    aligned = align_face(image, src, template=name)
    assert aligned.shape == (template.reference_size,) * 2 + (3,)
    want = move(src, template.matrix(src))
    assert np.abs(spot_centres(aligned, want) - want).max() < 0.1


def old_align_face(image, landmarks5, output_size=112):
    """The aligner before templates existed (commit cc6c05f): similarity onto the ArcFace template
    scaled by output_size / 112.0, then the same resampling."""
    matrix = estimate_similarity(np.asarray(landmarks5, np.float64), ARCFACE_TEMPLATE_112 * (output_size / 112.0))
    return warp_affine(image, matrix, (output_size, output_size))


def test_default_is_bit_identical_to_the_aligner_before_templates():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (250, 230, 3), dtype=np.uint8)
    points = move(ARCFACE_TEMPLATE_112, similarity(7, 1.8, 20, 15)) + rng.normal(0, 2.5, (5, 2))
    for size in (112, 64, 150, 37):
        want = old_align_face(image, points, size)
        assert np.array_equal(align_face(image, points, size), want)
        assert np.array_equal(align_face(image, points, size, "arcface"), want)
    assert np.array_equal(align_face(image, points), old_align_face(image, points))
    parent = InMemoryFaceSet(image[None], np.array([0]))
    assert np.array_equal(AlignedFaceSet(parent, points[None]).read(0), old_align_face(image, points))
    assert not np.array_equal(align_face(image, points, 112, "dlib-chip"), old_align_face(image, points))


def test_alignment_record_round_trip(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "train.rec").write_bytes(b"")
    assert read_alignment(pack) is None and read_alignment(tmp_path / "absent") is None
    write_alignment(pack, "dlib-chip", 150)
    record = read_alignment(pack / "train.rec")
    assert record == {"template": "dlib-chip", "size": 150, "file": str(pack / "alignment.json")}
    assert read_alignment(pack) == record
    view = InMemoryFaceSet(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), source=str(pack / "train.rec"))
    assert faceset_alignment(view.subset([1]))["template"] == "dlib-chip"     # a subset of the pack
    assert faceset_alignment(InMemoryFaceSet(np.zeros((1, 4, 4, 3), np.uint8), np.array([0]))) is None
    with pytest.raises(ConfigError, match="unknown alignment template"):
        write_alignment(pack, "nope", 112)


def make_set(tmp_path):
    root = tmp_path / "faces"
    rows = ["identity,file,score," + ",".join(COORD_COLUMNS)]
    for ident, name, shift in [("ann", "1.png", 5), ("bob", "2.png", -5)]:
        (root / ident).mkdir(parents=True, exist_ok=True)
        points = ARCFACE_TEMPLATE_112 + 20 + shift
        Image.fromarray(blob_image(points, (160, 160, 3))).save(root / ident / name)
        rows.append(f"{ident},{name},0.99," + ",".join(f"{v:.3f}" for v in points.ravel()))
    (tmp_path / "landmarks.csv").write_text("\n".join(rows) + "\n")
    return root, tmp_path / "landmarks.csv"


def test_align_cli_template_and_record(tmp_path, capsys):
    from tailface.data.open import open_faceset

    root, csv = make_set(tmp_path)
    out = tmp_path / "chips"
    assert main(["align", str(root), str(csv), str(out), "--template", "dlib-chip", "--no-progress"]) == 0
    assert "dlib-chip 150x150" in capsys.readouterr().out
    assert json.loads((out / "alignment.json").read_text()) == {"template": "dlib-chip", "size": 150}
    assert np.asarray(Image.open(out / "ann" / "1.jpg")).shape == (150, 150, 3)
    rec = tmp_path / "packs" / "box.rec"
    assert main(["align", str(root), str(csv), str(rec), "--template", "facenet-box", "--size", "80",
                 "--no-progress"]) == 0
    assert read_alignment(rec)["template"] == "facenet-box" and read_alignment(rec)["size"] == 80
    packed = open_faceset(rec)
    assert packed.read(0).shape == (80, 80, 3) and faceset_alignment(packed)["template"] == "facenet-box"
    assert main(["align", str(root), str(csv), str(tmp_path / "x"), "--template", "dlib"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("tailface align: error: unknown alignment template 'dlib'; "
                           "known: arcface, dlib-chip, facenet-box")


def test_prepare_records_the_template_and_refuses_another(tmp_path, capsys):
    """`tailface prepare` (the lfw layout of tests/data/test_align_prepare.py, two images)."""
    root = tmp_path / "faces"
    rows = ["identity,file,score," + ",".join(COORD_COLUMNS)]
    for name in ("Ann_Lee", "Bo_Ek"):
        file = f"{name}_0001.jpg"
        (root / "lfw" / "lfw-deepfunneled" / name).mkdir(parents=True)
        Image.fromarray(blob_image(ARCFACE_TEMPLATE_112 * 2, (250, 250, 3))).save(
            root / "lfw" / "lfw-deepfunneled" / name / file)
        rows.append(f"{name},{file},0.99," + ",".join(f"{v:.3f}" for v in (ARCFACE_TEMPLATE_112 * 2).ravel()))
    (root / "lfw" / "landmarks.csv").write_text("\n".join(rows) + "\n")
    args = ["prepare", "lfw", "--faces", str(root), "--out", str(tmp_path / "data"), "--workers", "1",
            "--no-progress"]
    assert main(args + ["--template", "dlib-chip"]) == 0
    assert "dlib-chip 150x150" in capsys.readouterr().out
    pack = tmp_path / "data" / "lfw"
    assert read_alignment(pack)["template"] == "dlib-chip"
    assert json.loads((pack / "prepare.json").read_text())["template"] == "dlib-chip"
    assert main(args + ["--template", "dlib-chip"]) == 0 and "already prepared" in capsys.readouterr().out
    assert main(args) == 2     # the default (arcface 112) is not what the pack holds
    assert "already prepared with template dlib-chip at size 150, not arcface at 112" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0 and read_alignment(pack)["template"] == "arcface"
    assert main(args + ["--template", "nope"]) == 2
    assert "known: arcface, dlib-chip, facenet-box" in capsys.readouterr().err
