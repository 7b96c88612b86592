import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tailface.cli.main import main
from tailface.data.images import decode_image, encode_jpeg, read_image
from tailface.data.open import open_faceset
from tailface.data.recordio import RecordIOFaceSet
from tailface.data.sources import IdentityFileFaceSet, ImageFolderFaceSet, ListFileFaceSet, find_undecodable
from tailface.errors import DataError
from tailface.paths import faces_root


def save(path: Path, seed: int, mode: str = "RGB", size=(12, 10)) -> np.ndarray:
    """Write a small image; return the RGB array a reader must produce from it (PNG: lossless)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    img.save(path)
    return np.asarray(img.convert("RGB"))


@pytest.fixture
def folder(tmp_path):
    """root/<identity>/<image>: bob 2 images, alice 1 (grayscale), carol 1 (RGBA), empty/ none."""
    root = tmp_path / "faces"
    expected = {
        "bob/b1.png": save(root / "bob/b1.png", 1),
        "bob/b2.png": save(root / "bob/b2.png", 2),
        "alice/a1.png": save(root / "alice/a1.png", 3, "L"),
        "carol/c1.png": save(root / "carol/c1.png", 4, "RGBA"),
    }
    (root / "empty").mkdir()
    (root / "bob/notes.txt").write_text("not an image")
    return root, expected


def test_image_folder_classes_ids_and_pixels(folder):
    root, expected = folder
    fs = ImageFolderFaceSet(root)
    assert fs.class_names == ["alice", "bob", "carol"]
    assert fs.image_ids == ["alice/a1.png", "bob/b1.png", "bob/b2.png", "carol/c1.png"]
    assert fs.labels.tolist() == [0, 1, 1, 2]
    for i, image_id in enumerate(fs.image_ids):
        image = fs.read(i)
        assert image.dtype == np.uint8 and image.shape == (10, 12, 3)
        np.testing.assert_array_equal(image, expected[image_id])


def test_image_folder_without_identity_folders(tmp_path):
    save(tmp_path / "flat.png", 0)
    with pytest.raises(DataError, match="no identity folders"):
        ImageFolderFaceSet(tmp_path)
    with pytest.raises(DataError, match="not found"):
        ImageFolderFaceSet(tmp_path / "nowhere")


def test_missing_and_zero_byte_files_fail_up_front_or_are_skipped(folder, caplog):
    root, _ = folder
    (root / "bob/b2.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"1 of 4 image files.*b2\.png: empty"):
        ImageFolderFaceSet(root)
    with caplog.at_level(logging.WARNING):
        fs = ImageFolderFaceSet(root, skip_bad=True)
    assert len(fs) == 3 and fs.image_ids == ["alice/a1.png", "bob/b1.png", "carol/c1.png"]
    assert fs.skipped == [("bob/b2.png", "empty (0 bytes)")]
    assert "skipped 1 of 4" in caplog.text


def test_corrupt_and_truncated_images_raise_at_read_naming_the_file(tmp_path):
    good = tmp_path / "x/good.jpg"
    good.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(good, quality=90)
    data = good.read_bytes()
    (tmp_path / "x/truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "x/garbage.jpg").write_bytes(b"this is not a jpeg at all")
    fs = ImageFolderFaceSet(tmp_path)
    assert len(fs) == 3  # existence and size pass; decoding happens at read time
    ids = fs.image_ids
    assert fs.read(ids.index("x/good.jpg")).shape == (64, 64, 3)
    with pytest.raises(DataError, match="truncated.jpg: corrupt or truncated"):
        fs.read(ids.index("x/truncated.jpg"))
    with pytest.raises(DataError, match="garbage.jpg: not a readable image"):
        fs.read(ids.index("x/garbage.jpg"))
    bad = find_undecodable(fs, progress=False)
    assert sorted(ids[i] for i, _ in bad) == ["x/garbage.jpg", "x/truncated.jpg"]


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.jpg: image file not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(DataError, match="<mem>: empty image"):
        decode_image(b"", "<mem>")


def test_list_file_sparse_labels_and_relative_paths(folder, tmp_path):
    root, expected = folder
    lst = root / "train.txt"
    lst.write_text("# comment\nbob/b1.png 40\n\ncarol/c1.png 7\nbob/b2.png 40\nalice/a1.png 1000\n")
    fs = ListFileFaceSet(lst)
    assert fs.class_names == ["7", "40", "1000"]
    assert fs.labels.tolist() == [1, 0, 1, 2]
    assert fs.image_ids == ["bob/b1.png", "carol/c1.png", "bob/b2.png", "alice/a1.png"]
    np.testing.assert_array_equal(fs.read(3), expected["alice/a1.png"])
    # paths relative to an explicit root instead of the list's folder
    other = tmp_path / "lists/l.txt"
    other.parent.mkdir()
    other.write_text("bob/b1.png 3\n")
    assert ListFileFaceSet(other, root=root).read(0).shape == (10, 12, 3)
    with pytest.raises(DataError, match="1 of 1 image files"):
        ListFileFaceSet(other)


def test_list_file_mxnet_lst_format(folder):
    root, _ = folder
    lst = root / "train.lst"
    lst.write_text("0\t5.000000\tbob/b1.png\n1\t2.000000\talice/a1.png\n")
    fs = ListFileFaceSet(lst)
    assert fs.class_names == ["2", "5"] and fs.labels.tolist() == [1, 0]
    assert fs.image_ids == ["bob/b1.png", "alice/a1.png"]
    spaced = root / "bob/with space.png"
    spaced.write_bytes((root / "bob/b1.png").read_bytes())
    (root / "tabs.txt").write_text("bob/with space.png\t4\n")
    assert ListFileFaceSet(root / "tabs.txt").image_ids == ["bob/with space.png"]
    (root / "spaces.txt").write_text("bob/with space.png 4\n")
    assert ListFileFaceSet(root / "spaces.txt").image_ids == ["bob/with space.png"]


@pytest.mark.parametrize("line, message", [
    ("bob/b1.png seven", r"train.txt:2: label must be an integer, got 'seven'"),
    ("bob/b1.png 2.5", r"train.txt:2: label must be an integer, got '2.5'"),
    ("bob/b1.png", r"train.txt:2: expected 'path label'"),
])
def test_list_file_bad_lines(folder, line, message):
    root, _ = folder
    (root / "train.txt").write_text(f"bob/b2.png 1\n{line}\n")
    with pytest.raises(DataError, match=message):
        ListFileFaceSet(root / "train.txt")


def test_list_file_missing(tmp_path):
    with pytest.raises(DataError, match="absent.txt: file not found"):
        ListFileFaceSet(tmp_path / "absent.txt")


@pytest.fixture
def celeba(tmp_path):
    images = tmp_path / "img"
    for name in ("000001.jpg", "000003.jpg", "000004.jpg"):
        save(images / name, int(name[:6]))
    ident = tmp_path / "identity.txt"
    ident.write_text("000001.jpg 2880\n000002.jpg 2937\n000003.jpg 8692\n000004.jpg 2880\n000005.jpg 1\n")
    return images, ident


def test_identity_file_missing_images_error_by_default(celeba):
    images, ident = celeba
    with pytest.raises(DataError, match=r"identity.txt: 2 of 5 listed images are not in .*000002.jpg, 000005.jpg"):
        IdentityFileFaceSet(images, ident)


def test_identity_file_skip_missing(celeba, caplog):
    images, ident = celeba
    with caplog.at_level(logging.WARNING):
        fs = IdentityFileFaceSet(images, ident, on_missing="skip")
    assert fs.missing == 2 and "2 of 5 listed images" in caplog.text
    assert fs.image_ids == ["000001.jpg", "000003.jpg", "000004.jpg"]
    assert fs.class_names == ["2880", "8692"] and fs.labels.tolist() == [0, 1, 0]
    assert fs.read(1).shape == (10, 12, 3)


def test_identity_file_bad_identity(celeba):
    images, ident = celeba
    ident.write_text("000001.jpg 2880\n000003.jpg abc\n")
    with pytest.raises(DataError, match="identity.txt:2: identity must be an integer"):
        IdentityFileFaceSet(images, ident, on_missing="skip")


def test_open_faceset_dispatch(folder, celeba, tmp_path, monkeypatch):
    root, _ = folder
    assert isinstance(open_faceset(root), ImageFolderFaceSet)
    (root / "l.txt").write_text("bob/b1.png 1\n")
    assert isinstance(open_faceset(str(root / "l.txt")), ListFileFaceSet)
    images, ident = celeba
    fs = open_faceset(f"celeba:{images}:{ident}")
    assert isinstance(fs, IdentityFileFaceSet) and fs.missing == 2
    with pytest.raises(DataError, match="accepted dataset specs"):
        open_faceset(tmp_path / "nothing.here")
    with pytest.raises(DataError, match="celeba:IMAGE_DIR:IDENTITY_FILE"):
        open_faceset("celeba:onlyone")
    calls = []
    import tailface.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "synthetic_faceset", lambda **kw: calls.append(kw) or "synthetic set")
    assert open_faceset(None) == "synthetic set" and open_faceset("synthetic", seed=3) == "synthetic set"
    assert calls == [{}, {"seed": 3}]


def test_pack_cli_and_open_packed_folder(folder, tmp_path, capsys):
    root, expected = folder
    out = tmp_path / "packed/train.rec"
    assert main(["pack", str(root), str(out), "--no-progress", "--quality", "100"]) == 0
    printed = capsys.readouterr().out
    assert "4 images, 3 classes" in printed and f"wrote {out}" in printed
    fs = open_faceset(out.parent)
    assert isinstance(fs, RecordIOFaceSet)
    assert fs.class_names == ["alice", "bob", "carol"]
    assert fs.image_ids == ["alice/a1.png", "bob/b1.png", "bob/b2.png", "carol/c1.png"]
    assert fs.labels.tolist() == [0, 1, 1, 2]
    np.testing.assert_array_equal(fs.read(1), expected["bob/b1.png"])  # PNG bytes copied: lossless
    assert main(["pack", str(root), str(tmp_path / "re/train.rec"), "--no-progress", "--quality", "100",
                 "--reencode"]) == 0
    np.testing.assert_array_equal(open_faceset(tmp_path / "re").read(1),
                                  decode_image(encode_jpeg(expected["bob/b1.png"], 100)))


def test_pack_cli_bad_input(folder, tmp_path, capsys):
    root, _ = folder
    (root / "bob/b2.png").write_bytes(b"garbage")
    out = tmp_path / "p/train.rec"
    assert main(["pack", str(root), str(out), "--no-progress"]) == 2
    assert "b2.png: not a readable image" in capsys.readouterr().err
    assert not out.exists() and not list(out.parent.glob("*.tmp"))
    assert main(["pack", str(root), str(out), "--no-progress", "--skip-bad"]) == 0
    printed = capsys.readouterr().out
    assert "skipped bob/b2.png" in printed and "wrote" in printed and "3 images, 3 classes" in printed
    assert main(["pack", str(root), str(tmp_path / "out.zip")]) == 2


@pytest.mark.realdata
def test_real_celeba_identity_file_lists_more_than_present():
    celeba = faces_root() / "celeba"
    if not (celeba / "identity_CelebA.txt").is_file():
        pytest.skip(f"real CelebA identity file not found under {faces_root()} (set TAILFACE_FACES)")
    fs = open_faceset(f"celeba:{celeba / 'img_align_celeba_89x109'}:{celeba / 'identity_CelebA.txt'}")
    assert len(fs) == 10_000 and fs.missing == 202_599 - 10_000
    assert fs.num_classes == 5_429
    assert fs.read(0).shape == (109, 89, 3)
