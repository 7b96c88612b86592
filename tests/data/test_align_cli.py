import numpy as np
from PIL import Image

from tailface.cli.main import main
from tailface.data.align import ARCFACE_TEMPLATE_112
from tailface.data.landmarks import COORD_COLUMNS


def make_set(tmp_path):
    """Two identities, three 128x128 images with a bright square at known 'landmarks'."""
    root = tmp_path / "faces"
    rows = ["identity,file,score," + ",".join(COORD_COLUMNS)]
    for ident, name, shift in [("ann", "1.png", 5), ("ann", "2.png", -5), ("bob", "3.png", 0)]:
        (root / ident).mkdir(parents=True, exist_ok=True)
        img = np.full((128, 128, 3), 40, np.uint8)
        points = ARCFACE_TEMPLATE_112 + 8 + shift
        for x, y in points:
            img[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 250
        Image.fromarray(img).save(root / ident / name)
        coords = ",".join(f"{v:.2f}" for v in points.ravel()) if name != "3.png" else ",,,,,,,,,"
        rows.append(f"{ident},{name},0.99,{coords}")
    csv = tmp_path / "landmarks.csv"
    csv.write_text("\n".join(rows) + "\n")
    return root, csv


def test_missing_landmarks_are_an_error_listing_them(tmp_path, capsys):
    root, csv = make_set(tmp_path)
    assert main(["align", str(root), str(csv), str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "1 of 3 images have no landmarks" in err and "bob/3.png" in err and "center-crop" in err


def test_folder_output_with_center_crop_fallback(tmp_path, capsys):
    root, csv = make_set(tmp_path)
    out = tmp_path / "out"
    assert main(["align", str(root), str(csv), str(out), "--fallback", "center-crop",
                 "--size", "64", "--no-progress"]) == 0
    assert "centre-cropped" in capsys.readouterr().out
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert files == ["ann/1.jpg", "ann/2.jpg", "bob/3.jpg"]
    aligned = np.asarray(Image.open(out / "ann" / "1.jpg"))
    assert aligned.shape == (64, 64, 3)
    x, y = np.round(ARCFACE_TEMPLATE_112[0] * 64 / 112).astype(int)
    assert aligned[y, x, 0] > 120 and aligned[5, 5, 0] < 80  # landmark bright, background dark


def test_rec_output(tmp_path):
    from tailface.data.open import open_faceset

    root, csv = make_set(tmp_path)
    rec = tmp_path / "packs" / "aligned.rec"
    assert main(["align", str(root), str(csv), str(rec), "--fallback", "center-crop", "--no-progress"]) == 0
    packed = open_faceset(rec)
    assert len(packed) == 3 and packed.num_classes == 2 and packed.read(0).shape == (112, 112, 3)
