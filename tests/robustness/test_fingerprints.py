"""The fingerprint module (:mod:`tailface.fingerprints`): the same input gives the same print; a
changed label, index, size, a file replaced under the same name, and a dataset replaced by an
OLDER copy each give another (modification times compared for equality, never for order: the rule
"redo when an input is newer" misses an older copy); a moved dataset keeps its print; records,
comparison and the messages that name what changed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from tailface.data.faceset import InMemoryFaceSet
from tailface.data.open import open_faceset
from tailface.data.perturb.manifest import write_perturbed
from tailface.data.recordio import write_recordio
from tailface.fingerprints import (
    compare,
    config_print,
    dataset_print,
    faceset_print,
    file_print,
    read_record,
    record_path,
    write_record,
)

HOUR = 3600 * 10**9


def faces(root: Path, identities: int = 3, per: int = 3, seed: int = 0, size: int = 8) -> Path:
    """``root/id<i>/<j>.png``: a folder of identity folders (random pixels from ``seed``)."""
    rng = np.random.default_rng(seed)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True, exist_ok=True)
        for j in range(per):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"id{i}" / f"{j}.png")
    return root


def pack(folder: Path, seed: int = 0) -> Path:
    """A .rec pack (with .idx and sidecars) of a tiny folder of faces drawn from ``seed``."""
    source = faces(folder.parent / f"src{seed}-{folder.name}", seed=seed)
    write_recordio(open_faceset(str(source)), folder / "train.rec", progress=False)
    return folder


def age(root: Path, ns: int) -> None:
    """Every file under ``root`` (and ``root`` itself) given the modification time ``ns``."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, ns=(ns, ns))


def digest(spec, faceset=None) -> str:
    return dataset_print(spec, faceset)["sha256"]


def test_same_input_same_print_for_every_format(tmp_path):
    folder = faces(tmp_path / "faces")
    lst = tmp_path / "faces" / "list.txt"
    lst.write_text("".join(f"id{i}/{j}.png {i}\n" for i in range(3) for j in range(3)))
    rec = pack(tmp_path / "pack")
    for spec in (str(folder), str(lst), str(rec), str(rec / "train.rec"), "synthetic"):
        assert dataset_print(spec) == dataset_print(spec), spec
    opened = open_faceset(str(rec))
    assert dataset_print(str(rec), opened) == dataset_print(str(rec), open_faceset(str(rec)))
    assert dataset_print(str(rec), opened)["images"] == 9 and dataset_print(str(rec), opened)["classes"] == 3
    assert dataset_print(str(rec))["format"] == "rec" and dataset_print(str(lst))["format"] == "list"
    assert dataset_print(str(folder))["format"] == "folder"


def test_a_changed_label_changes_the_print(tmp_path):
    folder = faces(tmp_path / "faces")
    lst = folder / "list.txt"
    lst.write_text("".join(f"id{i}/{j}.png {i}\n" for i in range(3) for j in range(3)))
    before = digest(lst)
    lst.write_text(lst.read_text().replace("id0/0.png 0", "id0/0.png 1"))
    assert digest(lst) != before
    # an image moved to another identity folder (its label changes)
    before = digest(folder)
    (folder / "id0" / "0.png").rename(folder / "id1" / "9.png")
    assert digest(folder) != before
    # the labels of a set as opened (a .rec's labels live in its records, not in its index)
    x = np.zeros((4, 8, 8, 3), np.uint8)
    a = InMemoryFaceSet(x, [0, 0, 1, 1])
    assert faceset_print(a) == faceset_print(InMemoryFaceSet(x, [0, 0, 1, 1]))
    assert faceset_print(a)["sha256"] != faceset_print(InMemoryFaceSet(x, [0, 1, 1, 1]))["sha256"]
    rec = pack(tmp_path / "pack")
    opened = open_faceset(str(rec))
    relabelled = opened.with_labels(np.roll(opened.labels, 1), opened.class_names)
    assert digest(rec, opened) != digest(rec, relabelled)


def test_a_changed_index_changes_the_print_and_a_rec_includes_its_idx(tmp_path):
    rec = pack(tmp_path / "pack")
    before = dataset_print(str(rec))
    assert "train.idx" in before["parts"] and "train.rec" in before["parts"]
    idx = rec / "train.idx"
    lines = idx.read_text().splitlines()
    idx.write_text("\n".join(lines[:1] + lines[2:3] + lines[1:2] + lines[3:]) + "\n")  # two offsets swapped
    after = dataset_print(str(rec))
    assert after["sha256"] != before["sha256"]
    assert [k for k in after["parts"] if after["parts"][k] != before["parts"][k]] == ["train.idx"]


def test_a_changed_size_changes_the_print(tmp_path):
    rec = pack(tmp_path / "pack")
    before = digest(rec)
    with open(rec / "train.rec", "ab") as f:
        f.write(b"\0" * 8)
    assert digest(rec) != before
    folder = faces(tmp_path / "faces")
    before = digest(folder)
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(folder / "id2" / "1.png")  # another size
    assert digest(folder) != before


def test_a_replaced_file_with_the_same_name_changes_the_print(tmp_path):
    folder = faces(tmp_path / "faces")
    target = folder / "id1" / "2.png"
    before, stat = digest(folder), target.stat()
    other = faces(tmp_path / "other", seed=7) / "id1" / "2.png"
    shutil.copyfile(other, target)  # same name, same pixel size, other content
    assert digest(folder) != before
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    if target.stat().st_size != stat.st_size:
        assert digest(folder) != before  # its size differs: found even with the old time
    # a list's images, through the set as opened (their sizes and times)
    lst = folder / "list.txt"
    lst.write_text("".join(f"id{i}/{j}.png {i}\n" for i in range(3) for j in range(3)))
    before = digest(lst, open_faceset(str(lst)))
    shutil.copyfile(faces(tmp_path / "third", seed=9) / "id0" / "1.png", folder / "id0" / "1.png")
    assert digest(lst, open_faceset(str(lst))) != before
    # a file of another format (a verification .bin): its bytes
    blob = tmp_path / "set.bin"
    blob.write_bytes(b"a" * 100)
    before = digest(blob)
    blob.write_bytes(b"b" * 100)
    assert digest(blob) != before


def test_a_dataset_replaced_by_an_older_copy_is_detected(tmp_path):
    """Mtime alone ("redo when an input is newer") misses an older copy; the print does not."""
    live = tmp_path / "data"
    faces(live, seed=1)
    age(live, 10 * HOUR)
    now = digest(live)
    backup = faces(tmp_path / "backup", seed=2)  # another dataset, older than the live one
    age(backup, 5 * HOUR)
    shutil.rmtree(live)
    shutil.copytree(backup, live, copy_function=shutil.copy2)  # copy2 keeps the older times
    assert max(p.stat().st_mtime_ns for p in live.rglob("*")) < 10 * HOUR  # older: a newer-than rule sees nothing
    assert digest(live) != now
    # the same with a .rec pack replaced by an older pack of other images
    rec = pack(tmp_path / "pack", seed=3)
    age(rec, 10 * HOUR)
    now = digest(rec)
    old = pack(tmp_path / "oldpack", seed=4)
    age(old, 5 * HOUR)
    shutil.rmtree(rec)
    shutil.copytree(old, rec, copy_function=shutil.copy2)
    assert digest(rec) != now


def test_a_moved_dataset_keeps_its_print(tmp_path):
    rec = pack(tmp_path / "pack")
    folder = faces(tmp_path / "faces")
    before = (digest(rec), digest(folder))
    rec.rename(tmp_path / "moved-pack")
    folder.rename(tmp_path / "moved-faces")
    assert (digest(tmp_path / "moved-pack"), digest(tmp_path / "moved-faces")) == before
    assert dataset_print(tmp_path / "moved-pack")["spec"] == str(tmp_path / "moved-pack")


def test_a_perturbed_set_includes_its_manifest_and_its_source(tmp_path):
    source = faces(tmp_path / "faces")
    out = tmp_path / "perturbed"
    pairs = [(f"id{i}/{j}.png", f"id{i}") for i in range(3) for j in range(3)]
    write_perturbed(out, pairs, {"format": "tailface-perturbed", "source": {"spec": "../faces", "fingerprint": "x"},
                                 "order": []})
    before = dataset_print(str(out))
    assert before["format"] == "perturbed" and {"perturbed.lst", "manifest.json", "source"} <= set(before["parts"])
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "seed": 1}))
    assert digest(out) != before["sha256"]
    again = digest(out)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(source / "id0" / "0.png")  # its source changed
    assert digest(out) != again


def test_synthetic_data_is_its_generator_or_its_pixels():
    assert dataset_print("synthetic")["parts"].keys() == {"generator"}
    x = np.zeros((2, 4, 4, 3), np.uint8)
    a, b = InMemoryFaceSet(x, [0, 1]), InMemoryFaceSet(x + 1, [0, 1])
    assert digest("synthetic", a) != digest("synthetic", b)  # same labels, other pixels
    assert digest("synthetic", a) == digest("synthetic", a.subset([0, 1], relabel=False))


def test_file_and_config_prints(tmp_path):
    path = tmp_path / "final.pt"
    path.write_bytes(b"weights")
    first = file_print(path)
    assert first == file_print(path) and first["size"] == 7
    path.write_bytes(b"other!!")  # same size; the memo is keyed on times and inode too
    assert file_print(path)["sha256"] != first["sha256"]
    assert file_print(tmp_path / "absent.pt")["sha256"] == "missing"
    assert config_print({"lr": 0.1, "epochs": 2}) == config_print({"epochs": 2, "lr": 0.1})
    assert config_print({"lr": 0.1})["sha256"] != config_print({"lr": 0.05})["sha256"]


def test_records_compare_and_name_what_changed(tmp_path):
    data = faces(tmp_path / "faces")
    inputs = {"train": config_print({"lr": 0.1, "epochs": 2}), "data": dataset_print(str(data))}
    record = write_record(record_path(tmp_path / "train" / "final.pt"), inputs)
    assert record == tmp_path / "train" / "final.inputs.json"
    assert read_record(record) == json.loads(json.dumps(inputs))
    assert read_record(tmp_path / "absent.json") is None
    same = compare(read_record(record), inputs)
    assert same.same and not same.unknown
    assert compare(None, inputs).unknown == ["train", "data"] and compare(None, inputs).same  # unknown, not a change
    newer = {**inputs, "head": config_print({"name": "softmax"})}
    assert compare(read_record(record), newer).unknown == ["head"]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(data / "id2" / "5.png")
    changed = compare(read_record(record), {"train": config_print({"lr": 0.05, "epochs": 2}),
                                            "data": dataset_print(str(data))})
    assert changed.changed[0] == "train: lr 0.1 -> 0.05"
    assert changed.changed[1].startswith(f"data {data}: listing differs, fingerprint ")
