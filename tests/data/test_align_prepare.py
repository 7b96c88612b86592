"""``tailface prepare`` on a tiny fake faces root with the real layout."""

import json

import numpy as np
import pytest
from PIL import Image

from tailface.cli.main import main
from tailface.data.align import ARCFACE_TEMPLATE_112
from tailface.data.landmarks import COORD_COLUMNS
from tailface.data.open import open_faceset
from tailface.data.prepare import prepare

HEADER = "identity,file,score," + ",".join(COORD_COLUMNS)


def save(path, size, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def coords(scale):
    return ",".join(f"{v:.2f}" for v in (ARCFACE_TEMPLATE_112 * scale).ravel())


@pytest.fixture
def faces(tmp_path):
    root = tmp_path / "faces"
    lfw = ["identity,file,score," + ",".join(COORD_COLUMNS)]
    for k, (name, n) in enumerate([("Ann_Lee", 2), ("Bo_Ek", 1)]):
        for j in range(1, n + 1):
            file = f"{name}_{j:04d}.jpg"
            save(root / "lfw" / "lfw-deepfunneled" / name / file, (250, 250), k * 10 + j)
            lfw.append(f"{name},{file},0.99,{coords(2.0)}")
    (root / "lfw" / "landmarks.csv").write_text("\n".join(lfw) + "\n")
    celeba = root / "celeba"
    ident = {"000001.jpg": 12, "000002.jpg": 7, "000003.jpg": 12, "000004.jpg": 5}  # 000004 absent
    for i, file in enumerate(["000001.jpg", "000002.jpg", "000003.jpg"]):
        save(celeba / "img_align_celeba_89x109" / file, (89, 109), 100 + i)
    (celeba / "identity_CelebA.txt").write_text("".join(f"{f} {c}\n" for f, c in ident.items()))
    (celeba / "img_align_celeba_89x109_landmarks.csv").write_text(
        f"{HEADER}\n12,000001.jpg,0.9,{coords(0.8)}\n7,000002.jpg,,,,,,,,,,,\n12,000003.jpg,0.9,{coords(0.7)}\n")
    wild = [HEADER]
    for i, (c, file) in enumerate([("12", "000100.jpg"), ("99", "000200.jpg")]):
        save(celeba / "wild_crops" / c / file, (176, 176), 200 + i)
        wild.append(f"{c},{file},0.99,{coords(1.5)}")
    (celeba / "wild_crops" / "landmarks.csv").write_text("\n".join(wild) + "\n")
    return root


def test_celeba_train_merges_by_identity_number(faces, tmp_path):
    summary = prepare("celeba-train", faces, tmp_path / "out" / "celeba-train", workers=2, progress=False)
    assert summary["images"] == 5 and summary["identities"] == 3
    assert summary["mean_landmark_fallback"] == 1 and summary["fallback_examples"] == ["000002.jpg"]
    packed = open_faceset(tmp_path / "out" / "celeba-train")
    by_id = {i: packed.class_names[l] for i, l in zip(packed.image_ids, packed.labels)}
    assert by_id == {"000001.jpg": "12", "000003.jpg": "12", "12/000100.jpg": "12",
                     "000002.jpg": "7", "99/000200.jpg": "99"}
    assert packed.read(0).shape == (112, 112, 3)
    on_disk = json.loads((tmp_path / "out" / "celeba-train" / "prepare.json").read_text())
    assert on_disk["images"] == 5
    again = prepare("celeba-train", faces, tmp_path / "out" / "celeba-train", progress=False)
    assert "already prepared" in again["skipped"]


def test_single_and_multi_process_packs_are_identical(faces, tmp_path):
    one = prepare("lfw", faces, tmp_path / "a" / "lfw", workers=1, progress=False)
    two = prepare("lfw", faces, tmp_path / "b" / "lfw", workers=2, progress=False)
    assert one["images"] == two["images"] == 3
    a, b = open_faceset(tmp_path / "a" / "lfw"), open_faceset(tmp_path / "b" / "lfw")
    assert a.image_ids == b.image_ids == ["Ann_Lee/Ann_Lee_0001.jpg", "Ann_Lee/Ann_Lee_0002.jpg",
                                          "Bo_Ek/Bo_Ek_0001.jpg"]
    for i in range(3):
        np.testing.assert_array_equal(a.read(i), b.read(i))


def test_cli_all_and_missing_root(faces, tmp_path, capsys):
    assert main(["prepare", "all", "--faces", str(faces), "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "celeba-wild: 2 images, 2 identities" in out and "lfw: 3 images" in out
    assert main(["prepare", "lfw", "--faces", str(tmp_path / "none"), "--out", str(tmp_path / "d2")]) == 2
    assert "face data folder not found" in capsys.readouterr().err
