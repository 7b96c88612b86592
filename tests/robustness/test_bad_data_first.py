"""Bad data found before the work (issue 24, item 5): ``tailface check`` decodes every image and lists
the unreadable ones, ``data.options.skip_bad`` leaves corrupt images out (not only missing files) and
lists them in ``OUT/skipped.txt``, and the error a corrupt image raises in training names the file,
the problem and the ways out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tailface.cli.main import main
from tailface.data.decode_check import scan, without_unreadable
from tailface.data.open import open_faceset
from tailface.data.training_set import open_heldout, open_pool
from tailface.experiment.config import DataConfig

from ._helpers import TINY_MODEL, TINY_TRAIN


def faces(root: Path, identities: int = 3, per: int = 4) -> Path:
    """``root/id<i>/<j>.png``, 16x16 noise; then id0/1.png truncated, id2/0.png not an image, id1/2.png empty."""
    rng = np.random.default_rng(0)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True, exist_ok=True)
        for j in range(per):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / f"id{i}" / f"{j}.png")
    return root


def spoil(root: Path, empty: bool = True) -> dict[str, str]:
    """Three kinds of unreadable image; ``{image id: the problem's words}``."""
    data = (root / "id0" / "1.png").read_bytes()
    (root / "id0" / "1.png").write_bytes(data[: len(data) // 2])
    (root / "id2" / "0.png").write_text("not an image\n")
    bad = {"id0/1.png": "corrupt or truncated image", "id2/0.png": "not a readable image"}
    if empty:
        (root / "id1" / "2.png").write_bytes(b"")
        bad["id1/2.png"] = "empty (0 bytes)"
    return bad


def config(tmp: Path, data: str, **data_block) -> Path:
    doc = {"name": "tiny", "data": {"train": data, **data_block}, "model": TINY_MODEL, "head": {"name": "softmax"},
           "train": {**TINY_TRAIN, "batch_size": 4, "max_steps": None}}
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(doc))
    return tmp / "tiny.yaml"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(argv)
    finally:
        torch.set_num_threads(threads)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("workers", [0, 2])
def test_check_lists_every_unreadable_image_and_exits_2(tmp_path, capsys, workers):
    root = faces(tmp_path / "faces")
    bad = spoil(root)
    code, out, err = run(["check", str(root), "--num-workers", str(workers)], capsys)
    assert code == 2, err
    listed = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert len(listed) == len(bad)
    for image_id, problem in bad.items():  # each one: its file, then its problem
        assert any(line.startswith(f"{root / image_id}: {problem}") for line in listed), (image_id, listed)
    assert "decoded 12 images: 9 readable (sizes 16x16: 9), 3 unreadable" in out
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert errors == [f"tailface check: error: {root}: 3 of 12 images cannot be read (listed above); to leave them "
                      "out: data.options.skip_bad: true in the experiment config, or tailface pack --skip-bad "
                      "(a clean pack)"]
    assert "decoding images" in err and "100%" in err  # the progress bar


def test_check_of_good_data_exits_0_without_progress_when_asked(tmp_path, capsys):
    root = faces(tmp_path / "faces")
    code, out, err = run(["check", str(root), "--no-progress"], capsys)
    assert code == 0, err
    assert "12 readable (sizes 16x16: 12), 0 unreadable" in out
    assert "decoding images" not in err


def test_analyze_says_it_did_not_decode(tmp_path, capsys):
    root = faces(tmp_path / "faces")
    spoil(root, empty=False)
    code, out, _ = run(["analyze", str(root)], capsys)
    assert code == 0  # analyze reads the index only; it points to the verb that decodes
    assert f"tailface check {root} decodes every one" in out


def test_corrupt_image_in_training_names_the_file_the_problem_and_the_ways_out(tmp_path, capsys):
    root = faces(tmp_path / "faces")
    spoil(root, empty=False)
    code, _, err = run(["train", str(config(tmp_path, str(root))), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err[-2000:]
    message = errors[0]
    assert ("id0/1.png: corrupt or truncated image" in message or "id2/0.png: not a readable image" in message)
    for way in (f"tailface check {root}", "data.options.skip_bad: true", "tailface pack --skip-bad"):
        assert way in message, message


def test_skip_bad_leaves_corrupt_images_out_and_lists_them(tmp_path, capsys):
    root = faces(tmp_path / "faces")
    bad = spoil(root)
    code, _, err = run(["train", str(config(tmp_path, str(root), options={"skip_bad": True})),
                        "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err[-2000:]
    assert "3 bad files left out, listed in" in err
    listed = dict(line.split("\t", 1) for line in (tmp_path / "o" / "skipped.txt").read_text().splitlines())
    assert set(listed) == set(bad)
    for image_id, problem in bad.items():
        assert problem in listed[image_id]


def test_skip_bad_holds_through_the_held_out_split(tmp_path):
    """A study's data (held-out identities): the pool still lists what was left out, and neither the
    pool nor the held-out set holds an unreadable image."""
    root = faces(tmp_path / "faces", identities=12, per=3)
    bad = spoil(root)
    data = DataConfig(train=str(root), options={"skip_bad": True}, holdout={"fraction": 0.5, "seed": 0})
    pool, held = open_pool(data), open_heldout(data)
    assert {image_id for image_id, _ in pool.skipped} == set(bad)
    assert set(bad).isdisjoint(pool.image_ids) and set(bad).isdisjoint(held.image_ids)
    assert len(pool) + len(held) == 36 - len(bad)


def test_without_unreadable_decodes_once_per_process(tmp_path, monkeypatch):
    import tailface.data.decode_check as decode_check

    root = faces(tmp_path / "faces")
    spoil(root, empty=False)
    calls = []
    real = decode_check.undecodable
    monkeypatch.setattr(decode_check, "undecodable", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = without_unreadable(open_faceset(str(root)))
    second = without_unreadable(open_faceset(str(root)))
    assert len(calls) == 1 and first.image_ids == second.image_ids and len(first) == 10
    assert scan(first, progress=False).bad == []
