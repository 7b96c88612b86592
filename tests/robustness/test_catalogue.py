"""The catalogue of bad inputs (docs/errors.md): each row is run through the command line and must
end with exit code 2 and one line ``tailface CMD: error: ...`` naming the file and the problem
(the rows marked ``ok`` exit 0 by design and say what they left out).

``TAILFACE_CATALOGUE_OUT=FILE`` appends each row's real message (the temporary folder written as
``DIR``) to FILE as JSON lines; docs/errors.md's table was made from that output."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import tailface
from tailface.cli.main import main
from tailface.data.recordio import read_index

from ._helpers import TINY_BASELINE, TINY_MODEL, TINY_TRAIN


def write_folder(root: Path, identities: int = 3, per: int = 4, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True, exist_ok=True)
        for j in range(per):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"id{i}" / f"{j}.png")
    return root


def write_config(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def tiny_train_config(tmp: Path, data: str, **train) -> Path:
    doc = {"name": "tiny", "data": {"train": data}, "model": TINY_MODEL, "head": {"name": "softmax"},
           "train": {**TINY_TRAIN, "batch_size": 4, "max_steps": 2, **train}}
    return write_config(tmp / "tiny.yaml", doc)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny baseline trained once: ``OUT/train/final.pt`` and ``last.pt``."""
    tmp = tmp_path_factory.mktemp("trained")
    doc = {**TINY_BASELINE, "eval": {}, "train": {**TINY_BASELINE["train"], "max_steps": 2}}
    torch.set_num_threads(1)
    assert main(["train", str(write_config(tmp / "c.yaml", doc)), "--out", str(tmp / "out")]) == 0
    return tmp / "out"


def write_pack(tmp: Path) -> Path:
    assert main(["pack", str(write_folder(tmp / "faces")), str(tmp / "pack" / "train.rec"), "--no-progress"]) == 0
    return tmp / "pack" / "train.rec"


def features_file(path: Path, ids: list[str], x: np.ndarray | None = None) -> Path:
    from tailface.eval.features import save_features

    x = np.random.default_rng(0).standard_normal((len(ids), 8)).astype(np.float32) if x is None else x
    return save_features(path, x, ids)


def faces_root_with_pairs(tmp: Path) -> Path:
    root = tmp / "faces_root"
    (root / "lfw").mkdir(parents=True)
    (root / "lfw" / "pairs.txt").write_text("1 2\nA 1 2\nB 1 2\nA 1 C 1\nB 2 C 2\n")
    return root


PAIR_IDS = ["A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg", "B/B_0002.jpg", "C/C_0001.jpg", "C/C_0002.jpg"]


# -- the rows: (tmp, trained) -> (argv, text that the message must contain) -----------------------

def zero_byte_image(tmp, trained):
    root = write_folder(tmp / "faces")
    (root / "id1" / "2.png").write_bytes(b"")
    return ["pack", str(root), str(tmp / "p" / "train.rec")], "id1/2.png: empty (0 bytes)"


def truncated_image(tmp, trained):
    root = write_folder(tmp / "faces")
    data = (root / "id0" / "1.png").read_bytes()
    (root / "id0" / "1.png").write_bytes(data[: len(data) // 2])
    return (["train", str(tiny_train_config(tmp, str(root), max_steps=None)), "--out", str(tmp / "o")],
            f"id0/1.png: corrupt or truncated image: image file is truncated; to list every unreadable image: "
            f"tailface check {root}; to leave them out: data.options.skip_bad: true")


def truncated_image_with_workers(tmp, trained):
    argv, expected = truncated_image(tmp, trained)
    return argv + ["--num-workers", "2"], expected


def non_image_file(tmp, trained):
    root = write_folder(tmp / "faces")
    (root / "id2" / "0.png").write_text("not an image\n")
    return ["train", str(tiny_train_config(tmp, str(root), max_steps=None)), "--out", str(tmp / "o")], "id2/0.png"


def missing_image_in_list(tmp, trained):
    write_folder(tmp / "faces")
    lst = tmp / "faces" / "list.txt"
    lst.write_text("id0/0.png 0\nid0/9.png 0\nid1/0.png 1\n")
    return ["analyze", str(lst)], "id0/9.png: not found"


def missing_image_in_identity_file(tmp, trained):
    flat = tmp / "flat"
    flat.mkdir()
    for name in ("000001.png", "000002.png"):
        Image.new("RGB", (16, 16)).save(flat / name)
    ids = tmp / "identity.txt"
    ids.write_text("000001.png 1\n000002.png 1\n000003.png 2\n")
    cfg = tiny_train_config(tmp, str(ids))
    doc = yaml.safe_load(cfg.read_text())
    doc["data"] = {"train": f"celeba:{flat}:{ids}", "options": {"on_missing": "error"}}
    return ["train", str(write_config(cfg, doc)), "--out", str(tmp / "o")], "000003.png"


def non_integer_label(tmp, trained):
    write_folder(tmp / "faces")
    lst = tmp / "faces" / "list.txt"
    lst.write_text("id0/0.png 0\nid0/1.png abc\n")
    return ["analyze", str(lst)], "list.txt:2: label must be an integer, got 'abc'"


def out_of_range_label(tmp, trained):
    write_folder(tmp / "faces")
    lst = tmp / "faces" / "list.txt"
    lst.write_text("id0/0.png 0\nid0/1.png -3\n")
    return ["analyze", str(lst)], "list.txt:2: label '-3' is out of range"


def empty_dataset(tmp, trained):
    (tmp / "empty" / "id0").mkdir(parents=True)
    return ["analyze", str(tmp / "empty")], "no identity folders with images"


def identity_empty_after_filtering(tmp, trained):
    root = write_folder(tmp / "faces")
    cfg = tiny_train_config(tmp, str(root))
    doc = yaml.safe_load(cfg.read_text())
    doc["data"]["subset"] = "A"
    return ["train", str(write_config(cfg, doc)), "--out", str(tmp / "o")], "no classes in groups A"


def landmarks_missing_column(tmp, trained):
    root = write_folder(tmp / "faces")
    csv = tmp / "landmarks.csv"
    csv.write_text("file,lefteye_x,lefteye_y\nid0/0.png,1,2\n")
    return ["align", str(root), str(csv), str(tmp / "aligned.rec")], "landmarks.csv:1: missing column(s)"


def landmarks_extra_column(tmp, trained):
    from tailface.data.landmarks import COORD_COLUMNS

    root = write_folder(tmp / "faces")
    csv = tmp / "landmarks.csv"
    csv.write_text(",".join(("file",) + COORD_COLUMNS) + "\n" + "id0/0.png," + ",".join(["5"] * 10) + ",7\n")
    return ["align", str(root), str(csv), str(tmp / "aligned.rec")], "landmarks.csv:2: 12 fields, header has 11"


def unknown_alignment_template(tmp, trained):
    from tailface.data.landmarks import COORD_COLUMNS

    root = write_folder(tmp / "faces")
    csv = tmp / "landmarks.csv"
    csv.write_text(",".join(("file",) + COORD_COLUMNS) + "\n" + "id0/0.png," + ",".join(["5"] * 10) + "\n")
    return (["align", str(root), str(csv), str(tmp / "aligned.rec"), "--template", "dlib"],
            "unknown alignment template 'dlib'; known: arcface, dlib-chip, facenet-box")


def rec_bad_magic(tmp, trained):
    rec = write_pack(tmp)
    data = bytearray(rec.read_bytes())
    data[0:4] = b"\0\0\0\0"
    rec.write_bytes(bytes(data))
    return ["analyze", str(rec)], "wrong magic"


def rec_truncated_record(tmp, trained):
    rec = write_pack(tmp)
    index = read_index(rec.with_suffix(".idx"))
    last = max(index, key=lambda k: index[k])  # the record that ends the file
    with open(rec, "r+b") as f:
        f.truncate(index[last] + 20)
    return ["analyze", str(rec)], f"record {last} at offset {index[last]}: truncated"


def idx_offset_beyond_end(tmp, trained):
    rec = write_pack(tmp)
    idx = rec.with_suffix(".idx")
    lines = idx.read_text().splitlines()
    key = lines[3].split("\t")[0]
    lines[3] = f"{key}\t{rec.stat().st_size + 100}"
    idx.write_text("\n".join(lines) + "\n")
    return ["analyze", str(rec)], f"offset {rec.stat().st_size + 100} of key {key} is beyond the end"


def idx_keys_skip_records(tmp, trained):
    rec = write_pack(tmp)
    idx = rec.with_suffix(".idx")
    lines = idx.read_text().splitlines()
    del lines[5]
    idx.write_text("\n".join(lines) + "\n")
    return ["analyze", str(rec)], "train.idx"


def yaml_unknown_key(tmp, trained):
    cfg = write_config(tmp / "bad.yaml", {"model": TINY_MODEL, "train": {"lrr": 0.1}})
    return ["train", str(cfg), "--out", str(tmp / "o")], "unknown key 'lrr'; did you mean 'lr'?"


def yaml_wrong_type(tmp, trained):
    cfg = write_config(tmp / "bad.yaml", {"model": TINY_MODEL, "train": {"lr": "abc"}})
    return ["train", str(cfg), "--out", str(tmp / "o")], "train: lr must be a number, got 'abc'"


def yaml_missing_blocks(tmp, trained):
    (tmp / "empty.yaml").write_text("# nothing here\n")
    return ["train", str(tmp / "empty.yaml"), "--out", str(tmp / "o")], "empty config"


def features_rows_missing(tmp, trained):
    f = features_file(tmp / "f.npz", PAIR_IDS[:-1])
    return (["eval", "--features", str(f), "--protocols", "lfw", "--faces-root", str(faces_root_with_pairs(tmp)),
             "--out", str(tmp / "e")], "have no feature row (e.g. C_0002.jpg)")


def features_rows_duplicated(tmp, trained):
    f = features_file(tmp / "f.npz", PAIR_IDS + PAIR_IDS[:1])
    return (["eval", "--features", str(f), "--protocols", "lfw", "--faces-root", str(faces_root_with_pairs(tmp)),
             "--out", str(tmp / "e")], "1 duplicate image ids")


def features_not_the_protocols_images(tmp, trained):
    import scipy.io

    names = np.empty((4, 1), dtype=object)
    for i, n in enumerate(["A_0001.jpg", "A_0002.jpg", "B_0001.jpg", "B_0002.jpg"]):
        names[i, 0] = np.array([n])
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = np.array([[1.0], [2.0], [3.0], [4.0]])
    root = tmp / "faces_root"
    (root / "blufr").mkdir(parents=True)
    scipy.io.savemat(root / "blufr" / "blufr_lfw_config.mat",
                     {"imageList": names, "labels": np.array([[1], [1], [2], [2]]), "trainIndex": cell,
                      "testIndex": cell, "galIndex": cell, "probIndex": cell, "devTrainIndex": np.array([[1]]),
                      "devTestIndex": np.array([[2]])})
    f = features_file(tmp / "f.npz", ["A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg", "B/B_0002.jpg", "X/X_0001.jpg"])
    return (["eval", "--features", str(f), "--protocols", "blufr", "--faces-root", str(root), "--out", str(tmp / "e")],
            "1 feature rows are not in the protocol's image list (e.g. X_0001.jpg)")


def features_nan(tmp, trained):
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    x[4, 2] = np.nan
    f = features_file(tmp / "f.npz", PAIR_IDS, x)
    return (["eval", "--features", str(f), "--protocols", "lfw", "--faces-root", str(faces_root_with_pairs(tmp)),
             "--out", str(tmp / "e")], "1 of 6 feature rows hold NaN or inf (rows 4; image ids C/C_0001.jpg)")


def unknown_template_in_eval(tmp, trained):
    shutil.copy(trained / "train" / "final.pt", tmp / "final.pt")
    return (["eval", str(tmp / "final.pt"), "--template", "dlib-face", "--out", str(tmp / "e")],
            "unknown alignment template 'dlib-face'; known: arcface, dlib-chip, facenet-box")


def verification_folder_without_bin_files(tmp, trained):
    (tmp / "val").mkdir()
    (tmp / "val" / "README.txt").write_text("the .bin files were not copied\n")
    shutil.copy(trained / "train" / "final.pt", tmp / "final.pt")
    return (["eval", str(tmp / "final.pt"), "--protocols", f"verification:{tmp / 'val'}",
             "--out", str(tmp / "e")], f"{tmp / 'val'}: no verification .bin files in this folder")


def checkpoint_truncated(tmp, trained):
    ckpt = tmp / "final.pt"
    data = (trained / "train" / "final.pt").read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    return ["eval", str(ckpt), "--out", str(tmp / "e")], "final.pt: cannot read checkpoint"


def checkpoint_of_another_model(tmp, trained):
    out = tmp / "o"
    (out / "train").mkdir(parents=True)
    shutil.copy(trained / "train" / "last.pt", out / "train" / "last.pt")
    doc = {**TINY_BASELINE, "eval": {}, "model": {**TINY_MODEL, "width": 16}}
    return ["train", str(write_config(tmp / "c.yaml", doc)), "--out", str(out)], "cannot resume, model_spec differs"


def checkpoint_from_newer_tailface(tmp, trained):
    ckpt = torch.load(trained / "train" / "final.pt", weights_only=True)
    ckpt["meta"]["tailface_version"] = "99.0.0"
    torch.save(ckpt, tmp / "final.pt")
    return ["eval", str(tmp / "final.pt"), "--out", str(tmp / "e")], "written by tailface 99.0.0, newer than"


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def checkpoint_with_code(tmp, trained):
    ckpt = torch.load(trained / "train" / "final.pt", weights_only=True)
    ckpt["meta"]["note"] = _Payload(tmp / "PWNED")
    torch.save(ckpt, tmp / "final.pt")
    return ["eval", str(tmp / "final.pt"), "--out", str(tmp / "e")], "refused: the checkpoint holds a non-plain object"


def output_folder_of_another_experiment(tmp, trained):
    out = tmp / "o"
    out.mkdir()
    shutil.copy(trained / "config.yaml", out / "config.yaml")
    doc = {**TINY_BASELINE, "eval": {}, "train": {**TINY_BASELINE["train"], "lr": 0.05}}
    return ["train", str(write_config(tmp / "c.yaml", doc)), "--out", str(out)], "already holds a different experiment"


def out_names_a_file(tmp, trained):
    (tmp / "notes.txt").write_text("the user's\n")
    return (["eval", str(trained / "train" / "final.pt"), "--out", str(tmp / "notes.txt")],
            "--out names an existing file")


def embed_over_a_users_file(tmp, trained):
    (tmp / "afile.txt").write_text("the user's\n")
    return (["embed", str(trained / "train" / "final.pt"), "synthetic", str(tmp / "afile.txt")],
            "is not a features file tailface wrote")


def run_folder_in_use(tmp, trained):
    from tailface import locks

    (tmp / "o").mkdir()
    live = locks.process_start(os.getppid())  # a live process of this host stands for the other tailface
    rec = {**locks.record("train"), "pid": os.getppid(), "proc_start": live[1] if live else None}
    (tmp / "o" / locks.LOCK_NAME).write_text(json.dumps(rec))
    doc = {**TINY_BASELINE, "eval": {}}
    return ["train", str(write_config(tmp / "c.yaml", doc)), "--out", str(tmp / "o")], "in use by another tailface"


def subset_flag_that_does_not_apply(tmp, trained):
    root = write_folder(tmp / "faces")
    return (["subset", str(root), str(tmp / "s" / "sub.rec"), "--num-identities", "2"],
            "--num-identities does not apply to a group composition")


ROWS = [zero_byte_image, truncated_image, truncated_image_with_workers, non_image_file, missing_image_in_list,
        missing_image_in_identity_file, non_integer_label, out_of_range_label, empty_dataset,
        identity_empty_after_filtering, landmarks_missing_column, landmarks_extra_column, unknown_alignment_template,
        rec_bad_magic, rec_truncated_record, idx_offset_beyond_end, idx_keys_skip_records, yaml_unknown_key,
        yaml_wrong_type, yaml_missing_blocks, features_rows_missing, features_rows_duplicated,
        features_not_the_protocols_images, features_nan, unknown_template_in_eval,
        verification_folder_without_bin_files, checkpoint_truncated, checkpoint_of_another_model,
        checkpoint_from_newer_tailface, checkpoint_with_code, output_folder_of_another_experiment,
        subset_flag_that_does_not_apply, out_names_a_file, embed_over_a_users_file, run_folder_in_use]


# -- issue 24, item 5: bad data found before the work ---------------------------------------------

def unreadable_images_listed_by_check(tmp, trained):
    root = write_folder(tmp / "faces")
    data = (root / "id0" / "1.png").read_bytes()
    (root / "id0" / "1.png").write_bytes(data[: len(data) // 2])
    return ["check", str(root), "--no-progress"], f"{root}: 1 of 12 images cannot be read (listed above)"


def study_data_without_a_tail(tmp, trained):
    root = write_folder(tmp / "faces", identities=12, per=12)
    return ["study", str(root), "--out", str(tmp / "o")], "no tail to study"


def study_test_set_too_small(tmp, trained):
    root = write_folder(tmp / "faces", identities=8, per=8)
    return ["study", str(root), "--out", str(tmp / "o")], "too few test identities for tailface study"


ROWS += [unreadable_images_listed_by_check, study_data_without_a_tail, study_test_set_too_small]  # issue 24, item 5


def run_row(argv, tmp, capsys) -> tuple[int, str]:
    capsys.readouterr()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(argv)
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    return code, err


def record(row: str, argv: list[str], code: int, message: str, tmp: Path) -> None:
    target = os.environ.get("TAILFACE_CATALOGUE_OUT")
    if target:
        clean = lambda s: str(s).replace(str(tmp), "DIR")  # noqa: E731
        with open(target, "a") as f:
            f.write(json.dumps({"row": row, "command": " ".join(clean(a) for a in ["tailface", *argv]),
                                "code": code, "message": clean(message)}) + "\n")


@pytest.mark.parametrize("row", ROWS, ids=[r.__name__ for r in ROWS])
def test_bad_input_is_one_line_exit_2(row, tmp_path, trained, capsys):
    argv, expected = row(tmp_path, trained)
    code, err = run_row(argv, tmp_path, capsys)
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert code == 2, err[-3000:]
    assert len(errors) == 1, err[-3000:]
    message = errors[0]
    assert message.startswith(f"tailface {argv[0]}: error: "), message
    assert "Traceback" not in err and "Original" not in err, err[-3000:]
    assert expected in message, message
    assert str(tmp_path) in message or "tailface" in message
    record(row.__name__, argv, code, message, tmp_path)
    assert not (tmp_path / "PWNED").exists()  # the payload row: nothing ran


def test_skip_bad_leaves_bad_files_out_and_lists_them(tmp_path, capsys):
    root = write_folder(tmp_path / "faces")
    (root / "id1" / "2.png").write_bytes(b"")
    (root / "id2" / "3.png").write_text("not an image\n")
    out = tmp_path / "p" / "train.rec"
    code, err = run_row(["pack", str(root), str(out), "--skip-bad", "--no-progress", "--reencode"], tmp_path, capsys)
    assert code == 0, err
    report = (tmp_path / "p" / "train.skipped.txt").read_text()
    assert "id1/2.png\tempty (0 bytes)" in report and "id2/3.png" in report
    record("skip_bad", ["pack", str(root), str(out), "--skip-bad"], code, f"report {out.parent}/train.skipped.txt:"
           f" {report.strip()!r}", tmp_path)


def test_skip_bad_in_a_config_lists_the_skipped_files(tmp_path, capsys):
    root = write_folder(tmp_path / "faces")
    (root / "id1" / "2.png").write_bytes(b"")
    cfg = tiny_train_config(tmp_path, str(root))
    doc = yaml.safe_load(cfg.read_text())
    doc["data"]["options"] = {"skip_bad": True}
    code, err = run_row(["train", str(write_config(cfg, doc)), "--out", str(tmp_path / "o")], tmp_path, capsys)
    assert code == 0, err
    assert "1 bad files left out, listed in" in err
    assert (tmp_path / "o" / "skipped.txt").read_text() == "id1/2.png\tempty (0 bytes)\n"


def test_worker_error_reads_as_without_workers(tmp_path, trained, capsys, monkeypatch):
    monkeypatch.setenv("TAILFACE_DECODED_MIB", "0")  # read by the workers every epoch, not decoded once up front
    argv, _ = truncated_image(tmp_path, trained)
    without = [line for line in run_row(argv, tmp_path, capsys)[1].splitlines() if ": error: " in line]
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
    with_workers = [line for line in run_row(argv + ["--num-workers", "2"], tmp_path, capsys)[1].splitlines()
                    if ": error: " in line]
    assert without == with_workers and len(without) == 1


def test_force_replaces_another_experiment(tmp_path, trained, capsys):
    argv, _ = output_folder_of_another_experiment(tmp_path, trained)
    (tmp_path / "o" / "stale.txt").write_text("from the other experiment")
    code, err = run_row(argv + ["--force"], tmp_path, capsys)
    assert code == 0, err
    assert not (tmp_path / "o" / "stale.txt").exists() and (tmp_path / "o" / "train" / "final.pt").is_file()
    env = json.loads((tmp_path / "o" / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["threads"] >= 1 and "synthetic" in env["data"]


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from tailface.train.trainer import Trainer

    real_step = Trainer.step
    calls = {"n": 0}

    def step(self, joint, images, labels, lr):
        out = real_step(self, joint, images, labels, lr)
        calls["n"] += 1
        if calls["n"] == 3:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(Trainer, "step", step)
    doc = {**TINY_BASELINE, "eval": {}, "train": {**TINY_BASELINE["train"], "max_steps": 4}}
    out = tmp_path / "o"
    argv = ["train", str(write_config(tmp_path / "c.yaml", doc)), "--out", str(out)]
    code, err = run_row(argv, tmp_path, capsys)
    assert code == 2
    message = [line for line in err.splitlines() if ": error: " in line][0]
    assert "training diverged: loss nan at step 3" in message and "last.pt (after step 2) is kept unchanged" in message
    assert torch.load(out / "train" / "last.pt", weights_only=True)["global_step"] == 2
    assert not (out / "train" / "final.pt").exists()
    record("nan_loss", argv, code, message, tmp_path)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    import tailface.train.checkpoint as checkpoint

    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    doc = {**TINY_BASELINE, "eval": {}}
    out = tmp_path / "o"
    argv = ["train", str(write_config(tmp_path / "c.yaml", doc)), "--out", str(out)]
    code, err = run_row(argv, tmp_path, capsys)
    assert code == 2
    message = [line for line in err.splitlines() if ": error: " in line][0]
    assert "last.pt: cannot write (disk full); the previous last.pt is kept unchanged" in message
    assert torch.load(out / "train" / "last.pt", weights_only=True)["global_step"] == 2
    assert not list((out / "train").glob("*.tmp*"))
    record("full_disk", argv, code, message, tmp_path)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    code, err = run_row(argv, tmp_path, capsys)  # space freed: the same command continues
    assert code == 0 and "resuming" in err


def test_old_checkpoint_with_numpy_rng_state_still_resumes(tmp_path, capsys):
    """tailface 0.1.0 stored np.random.get_state() (a numpy pickle); it loads with exactly the
    numpy globals allowed, and resumes to the same weights."""
    from ._helpers import assert_same_weights

    doc = {**TINY_BASELINE, "eval": {}}
    config = write_config(tmp_path / "c.yaml", doc)
    ref, old = tmp_path / "ref", tmp_path / "old"
    assert run_row(["train", str(config), "--out", str(ref)], tmp_path, capsys)[0] == 0
    half = {**doc, "train": {**doc["train"], "max_steps": 2}}
    assert run_row(["train", str(write_config(tmp_path / "h.yaml", half)), "--out", str(old)], tmp_path, capsys)[0] == 0
    last = old / "train" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    s = ckpt["rng"]["numpy"]
    ckpt["rng"]["numpy"] = (s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                            s["cached_gaussian"])
    ckpt["meta"]["config"]["max_steps"] = 4
    torch.save(ckpt, last)  # the old format: a numpy array in the pickle
    with pytest.raises(Exception, match="numpy"):
        torch.load(last, weights_only=True)
    (old / "train" / "final.pt").unlink()
    for record in old.rglob("*.inputs.json"):  # tailface 0.1.0 recorded no input fingerprints
        record.unlink()
    shutil.copy(config, old / "config.yaml")
    (old / "config.yaml").write_text(yaml.safe_dump(yaml.safe_load((ref / "config.yaml").read_text())))
    code, err = run_row(["train", str(config), "--out", str(old)], tmp_path, capsys)
    assert code == 0, err
    assert "resuming" in err
    assert_same_weights(ref / "train" / "final.pt", old / "train" / "final.pt")


def test_reproduce_names_agree_with_the_cli(capsys):
    from tailface.cli.main import main
    from tailface.evidence.targets import target_names

    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"comma-separated among {', '.join(target_names())}, or all" in help_text  # the registry's, in order


def test_run_outputs_are_ignored_by_git():
    from tailface.cli.main import build_parser

    repo = Path(tailface.__file__).resolve().parents[2]
    ignore = (repo / ".gitignore").read_text().splitlines() if (repo / ".gitignore").is_file() else []
    if not ignore:
        pytest.skip("not a source checkout")
    args = build_parser().parse_args(["eval", "x.pt"])
    assert args.out.parts[0] == "runs" and "/runs/" in ignore
    readme = (repo / "README.md").read_text()
    for output in ("runs/celeba_sizes.png", "runs/lfw_features.npz"):
        assert output in readme


def test_metrics_record_what_a_bit_identical_rerun_needs(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    f = features_file(tmp_path / "f.npz", PAIR_IDS, x)
    (tmp_path / "root" / "lfw").mkdir(parents=True)
    (tmp_path / "root" / "lfw" / "pairs.txt").write_text("2 1\nA 1 2\nA 1 C 1\nB 1 2\nB 2 C 2\n")
    argv = ["eval", "--features", str(f), "--protocols", "lfw", "--faces-root", str(tmp_path / "root"),
            "--out", str(tmp_path / "e"), "--no-plots"]
    code, err = run_row(argv, tmp_path, capsys)
    assert code == 0, err
    env = json.loads((tmp_path / "e" / "metrics.json").read_text())["environment"]
    assert env["torch"] == torch.__version__ and env["cpu_capability"] and env["threads"] >= 1
    assert {"torch", "cpu_capability", "threads", "numpy", "faiss"} <= set(env["must_match_for_a_bit_identical_rerun"])


def test_a_bad_decoded_memory_budget_stops_before_any_stage(tmp_path, trained, capsys, monkeypatch):
    monkeypatch.setenv("TAILFACE_DECODED_MIB", "lots")
    root = write_folder(tmp_path / "faces")
    argv = ["train", str(tiny_train_config(tmp_path, str(root))), "--out", str(tmp_path / "o")]
    code, err = run_row(argv, tmp_path, capsys)
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert code == 2 and errors == ["tailface train: error: TAILFACE_DECODED_MIB='lots': must be a whole number of "
                                    "MiB (0 turns decoding into memory off)"], err
    assert not (tmp_path / "o").exists()  # nothing written: no stage started
    record("decoded_memory_budget_not_a_number", argv, code, errors[0], tmp_path)
