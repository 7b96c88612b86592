import struct

import numpy as np
import pytest
import torch

from tailface.data.faceset import InMemoryFaceSet
from tailface.data.images import decode_image, encode_jpeg
from tailface.data.open import open_faceset
from tailface.data.recordio import (
    MAGIC,
    IRHeader,
    RecordIOFaceSet,
    RecordIOReader,
    RecordIOWriter,
    pack_record,
    read_index,
    unpack_record,
    write_recordio,
)
from tailface.data.tensors import EvalBatches, normalize
from tailface.errors import DataError

M = struct.pack("<I", MAGIC)


def chunks(encoded: bytes):
    """(cflag, payload) of each chunk, parsed independently of the reader under test."""
    out, pos = [], 0
    while pos < len(encoded):
        magic, lrec = struct.unpack_from("<II", encoded, pos)
        assert magic == MAGIC
        length = lrec & ((1 << 29) - 1)
        out.append((lrec >> 29, encoded[pos + 8:pos + 8 + length]))
        pos += 8 + length + (-length % 4)
    assert pos == len(encoded)
    return out


def test_split_records_at_aligned_magic_words():
    # magic at 0 (start), 8, unaligned at 13 (must not split), and as the last 4 bytes (end)
    payload = M + b"abcd" + M + b"x" + M + b"yz0" + M
    assert len(payload) == 24
    got = chunks(RecordIOWriter.encode(payload))
    assert got == [(1, b""), (2, b"abcd"), (2, b"x" + M + b"yz0"), (3, b"")]
    # no magic: one whole record, padded
    assert chunks(RecordIOWriter.encode(b"hello")) == [(0, b"hello")]
    assert RecordIOWriter.encode(b"hello")[-3:] == b"\0\0\0"
    assert chunks(RecordIOWriter.encode(M)) == [(1, b""), (3, b"")]


def test_writer_reader_round_trip_with_magic_inside(tmp_path):
    rng = np.random.default_rng(0)
    payloads = {0: M, 1: b"", 2: b"abc", 7: M + M + b"q" + M}
    for key in range(10, 40):
        body = bytearray(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes())
        for _ in range(int(rng.integers(0, 4))):
            pos = int(rng.integers(0, len(body) + 1))
            body[pos:pos] = M
        payloads[key] = bytes(body)
    with RecordIOWriter(tmp_path / "t.rec") as w:
        for key, p in payloads.items():
            w.write(key, p)
    assert read_index(tmp_path / "t.idx") == w.index
    with RecordIOReader(tmp_path / "t.rec") as r:
        for key in reversed(list(payloads)):  # random access
            assert r.read(key) == payloads[key], key


def test_writer_is_atomic(tmp_path):
    with pytest.raises(RuntimeError):
        with RecordIOWriter(tmp_path / "a.rec") as w:
            w.write(0, b"data")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def faces(n_per_class=(3, 1, 2), size=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    labels = labels[rng.permutation(len(labels))]  # interleaved: the writer must group them
    # smooth images so JPEG keeps them close
    base = rng.integers(40, 216, (len(labels), 1, 1, 3))
    ramp = np.linspace(0, 30, size).astype(int)[None, :, None, None]
    images = (base + ramp).clip(0, 255).astype(np.uint8).repeat(size, axis=2)
    names = [f"id{c * 10}" for c in range(len(n_per_class))]
    ids = [f"{names[c]}/{i}.png" for i, c in enumerate(labels)]
    return InMemoryFaceSet(images, labels, names, ids)


def test_insightface_layout_round_trip(tmp_path):
    fs = faces()
    result = write_recordio(fs, tmp_path / "train.rec", quality=100, progress=False)
    assert (result.num_images, result.num_classes, result.skipped) == (6, 3, [])
    # the header structure, checked record by record
    r = RecordIOReader(tmp_path / "train.rec")
    h0, rest = r.read_header(0)
    assert h0.flag == 2 and h0.label.tolist() == [7.0, 10.0] and rest == b""
    assert sorted(r.keys) == list(range(10))
    ranges = [r.read_header(k)[0].label.tolist() for k in (7, 8, 9)]
    assert ranges == [[1.0, 4.0], [4.0, 5.0], [5.0, 7.0]]
    assert [r.read_header(k)[0].label for k in range(1, 7)] == [0, 0, 0, 1, 2, 2]
    assert (tmp_path / "property").read_text() == "3,16,16\n"

    rec = RecordIOFaceSet(tmp_path / "train.rec")
    assert rec.layout == "insightface" and rec.class_names == fs.class_names
    assert sorted(rec.image_ids) == sorted(fs.image_ids)
    for i, image_id in enumerate(rec.image_ids):
        j = fs.image_ids.index(image_id)
        assert rec.labels[i] == fs.labels[j]
        np.testing.assert_array_equal(rec.read(i), decode_image(encode_jpeg(fs.read(j), 100)))
        assert np.abs(rec.read(i).astype(int) - fs.read(j)).max() <= 3

    # without the sidecar files: label numbers and record keys
    (tmp_path / "classes.txt").unlink()
    (tmp_path / "image_ids.txt").unlink()
    bare = RecordIOFaceSet(tmp_path / "train.rec")
    assert bare.class_names == ["0", "1", "2"] and bare.image_ids == [str(k) for k in range(1, 7)]
    np.testing.assert_array_equal(bare.labels, rec.labels)


def test_write_recordio_skip_bad_drops_undecodable_and_empty_classes(tmp_path):
    fs = faces()

    class Flaky(InMemoryFaceSet):
        def _read(self, i):
            if self.labels[i] == 1:
                raise DataError(f"broken image {self.image_ids[i]}")
            return super()._read(i)

    flaky = Flaky(fs.images, fs.labels, fs.class_names, fs.image_ids)
    with pytest.raises(DataError, match="broken image"):
        write_recordio(flaky, tmp_path / "a/train.rec", progress=False)
    assert not (tmp_path / "a/train.rec").exists()
    result = write_recordio(flaky, tmp_path / "b/train.rec", skip_bad=True, progress=False)
    assert result.num_images == 5 and result.num_classes == 2 and len(result.skipped) == 1
    rec = RecordIOFaceSet(tmp_path / "b/train.rec")
    assert rec.class_names == ["id0", "id20"] and rec.class_counts().tolist() == [3, 2]


def write_raw(path, records):
    """Hand-build a .rec/.idx from (key, payload) with struct.pack only (no splitting needed)."""
    data, index = b"", []
    for key, payload in records:
        assert M not in payload
        index.append(f"{key}\t{len(data)}\n")
        data += struct.pack("<II", MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4)
    path.write_bytes(data)
    path.with_suffix(".idx").write_text("".join(index))


def im2rec_payload(label, image_seed, labels=None):
    image = np.full((8, 8, 3), image_seed * 20, dtype=np.uint8)
    if labels is None:
        head = struct.pack("<IfQQ", 0, label, 0, 0)
    else:
        head = struct.pack("<IfQQ", len(labels), 0.0, 0, 0) + struct.pack(f"<{len(labels)}f", *labels)
    return head + encode_jpeg(image, 100)


def test_im2rec_layout_hand_built(tmp_path):
    rec = tmp_path / "plain.rec"
    write_raw(rec, [(0, im2rec_payload(7.0, 1)), (1, im2rec_payload(3.0, 2)),
                    (5, im2rec_payload(0.0, 3, labels=[12.0, 99.0])), (3, im2rec_payload(7.0, 4))])
    fs = RecordIOFaceSet(rec)
    assert fs.layout == "im2rec"
    assert fs.keys.tolist() == [0, 1, 3, 5] and fs.image_ids == ["0", "1", "3", "5"]
    assert fs.class_names == ["3", "7", "12"] and fs.labels.tolist() == [1, 0, 1, 2]
    assert abs(int(fs.read(3)[0, 0, 0]) - 60) <= 2


def test_im2rec_non_integer_label(tmp_path):
    rec = tmp_path / "plain.rec"
    write_raw(rec, [(0, im2rec_payload(1.0, 1)), (1, im2rec_payload(2.5, 2))])
    with pytest.raises(DataError, match=r"plain.rec: record 1 has label 2.5, not an integer"):
        RecordIOFaceSet(rec)


def test_pack_and_unpack_record_match_mxnet_layout():
    payload = pack_record(IRHeader(0, 5.0, 9, 0), b"img")
    assert payload == struct.pack("<IfQQ", 0, 5.0, 9, 0) + b"img"
    h, rest = unpack_record(pack_record(IRHeader(2, np.array([4.0, 8.0]), 1), b"xy"))
    assert h.flag == 2 and h.label.tolist() == [4.0, 8.0] and h.first_label == 4.0 and rest == b"xy"


@pytest.fixture
def packed(tmp_path):
    write_recordio(faces(), tmp_path / "train.rec", progress=False)
    return tmp_path / "train.rec"


def test_wrong_magic(packed):
    data = bytearray(packed.read_bytes())
    offset = read_index(packed.with_suffix(".idx"))[3]
    data[offset] ^= 0xFF
    packed.write_bytes(bytes(data))
    fs = RecordIOFaceSet(packed)  # image records are only read when used
    with pytest.raises(DataError, match=rf"train.rec: record 3 at offset {offset}: wrong magic"):
        fs.read(2)


def test_truncated_record(tmp_path):
    rec = tmp_path / "plain.rec"
    write_raw(rec, [(0, im2rec_payload(1.0, 1)), (1, im2rec_payload(2.0, 2)), (2, im2rec_payload(2.0, 3))])
    rec.write_bytes(rec.read_bytes()[:-40])  # the last record's length now runs past the end
    fs = RecordIOFaceSet(rec)  # its header is still readable; the image is not
    assert fs.read(1).shape == (8, 8, 3)
    offset = read_index(rec.with_suffix(".idx"))[2]
    with pytest.raises(DataError, match=rf"plain.rec: record 2 at offset {offset}: truncated \(length"):
        fs.read(2)
    rec.write_bytes(rec.read_bytes()[:offset + 20])  # now even the header is cut: fails on open
    with pytest.raises(DataError, match="plain.rec: record 2 at offset .*: truncated"):
        RecordIOFaceSet(rec)


def test_idx_offset_beyond_end(packed):
    idx = packed.with_suffix(".idx")
    idx.write_text(idx.read_text() + f"99\t{packed.stat().st_size + 100}\n")
    with pytest.raises(DataError, match="train.idx: offset .* of key 99 is beyond the end of .*train.rec"):
        RecordIOFaceSet(packed)


@pytest.mark.parametrize("line", ["3 x", "3", "a\t12", "4\t-8"])
def test_malformed_idx_line(packed, line):
    idx = packed.with_suffix(".idx")
    idx.write_text(idx.read_text() + line + "\n")
    with pytest.raises(DataError, match="train.idx:11: malformed index line"):
        RecordIOFaceSet(packed)


def test_missing_idx(packed):
    packed.with_suffix(".idx").unlink()
    with pytest.raises(DataError, match="train.idx: index file not found"):
        RecordIOFaceSet(packed)


def test_header_range_does_not_match_idx_keys(packed):
    idx = packed.with_suffix(".idx")
    lines = idx.read_text().splitlines()
    idx.write_text("\n".join(l for l in lines if not l.startswith("4\t")) + "\n")
    with pytest.raises(DataError, match=r"train.rec: header range .*train.idx: 1 keys in \[0, 10\) are missing"):
        RecordIOFaceSet(packed)


def insightface_pack(path, identity_ranges, n_images=4, image_labels=None):
    a = n_images + 1
    records = [(0, pack_record(IRHeader(2, np.array([a, a + len(identity_ranges)], "<f4"))))]
    image_labels = image_labels or [0.0] * n_images
    records += [(k, im2rec_payload(image_labels[k - 1], k)) for k in range(1, a)]
    records += [(a + j, pack_record(IRHeader(2, np.array(r, "<f4")))) for j, r in enumerate(identity_ranges)]
    write_raw(path, records)


def test_hand_built_insightface_pack(tmp_path, caplog):
    insightface_pack(tmp_path / "ok.rec", [(1, 3), (3, 5)])
    fs = RecordIOFaceSet(tmp_path / "ok.rec")
    assert fs.layout == "insightface" and fs.labels.tolist() == [0, 0, 1, 1]
    assert fs.class_names == ["0", "1"]  # all image labels are 0: names fall back to record order
    # a record beyond the header's range is ignored (as InsightFace's MXFaceDataset does), with a warning
    data = (tmp_path / "ok.rec").read_bytes()
    extra = im2rec_payload(3.0, 9)
    (tmp_path / "ok.rec").write_bytes(data + struct.pack("<II", MAGIC, len(extra)) + extra + b"\0" * (-len(extra) % 4))
    with open(tmp_path / "ok.idx", "a") as f:
        f.write(f"50\t{len(data)}\n")
    with caplog.at_level("WARNING"):
        assert len(RecordIOFaceSet(tmp_path / "ok.rec")) == 4
    assert "ignoring 1 records outside" in caplog.text
    insightface_pack(tmp_path / "named.rec", [(1, 2), (2, 5)], image_labels=[40.0, 7.0, 7.0, 7.0])
    named = RecordIOFaceSet(tmp_path / "named.rec")
    assert named.class_names == ["40", "7"] and named.labels.tolist() == [0, 1, 1, 1]


def test_insightface_pack_without_identity_records_uses_image_labels(tmp_path):
    a = 4
    records = [(0, pack_record(IRHeader(2, np.array([a, a], "<f4"))))]
    records += [(k, im2rec_payload(label, k)) for k, label in zip(range(1, a), (5.0, 2.0, 5.0))]
    write_raw(tmp_path / "noid.rec", records)
    fs = RecordIOFaceSet(tmp_path / "noid.rec")
    assert fs.keys.tolist() == [1, 2, 3] and fs.class_names == ["2", "5"] and fs.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize("ranges, message", [
    ([(1, 3), (3, 6)], r"identity record 6 points to images \[3.0, 6.0\) outside the image keys \[1, 5\)"),
    ([(0, 3), (3, 5)], r"identity record 5 points to images \[0.0, 3.0\) outside"),
    ([(1, 3), (2, 5)], r"identity record 6 range \[2, 5\) overlaps"),
    ([(1, 3), (4, 5)], r"1 image records belong to no identity record \(e.g. key 3\)"),
])
def test_bad_identity_records(tmp_path, ranges, message):
    insightface_pack(tmp_path / "bad.rec", ranges)
    with pytest.raises(DataError, match=rf"bad.rec: {message}"):
        RecordIOFaceSet(tmp_path / "bad.rec")


def test_sidecar_from_another_pack(packed):
    (packed.parent / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="classes.txt: 2 lines but .*train.rec has 3 classes"):
        RecordIOFaceSet(packed)


def test_dataloader_with_two_workers(packed):
    fs = RecordIOFaceSet(packed)
    fs.read(0)  # open the handle in the parent: workers must reopen their own
    loader = torch.utils.data.DataLoader(EvalBatches(fs, (16, 16), 2), batch_size=None, num_workers=2)
    images = [normalize(batch) for batch in loader]
    expected = torch.stack([torch.from_numpy(fs.read(i).copy()).permute(2, 0, 1).float() for i in range(len(fs))])
    torch.testing.assert_close(torch.cat(images), (expected - 127.5) / 128.0)


def test_empty_image_records_fail_at_read_or_are_skipped(tmp_path):
    rec = tmp_path / "plain.rec"
    empty = struct.pack("<IfQQ", 0, 4.0, 0, 0)
    write_raw(rec, [(0, im2rec_payload(1.0, 1)), (1, empty), (2, im2rec_payload(2.0, 3))])
    fs = RecordIOFaceSet(rec)
    assert len(fs) == 3
    with pytest.raises(DataError, match=r"plain.rec#1: empty image"):
        fs.read(1)
    skipping = open_faceset(rec, skip_bad=True)
    assert skipping.keys.tolist() == [0, 2] and skipping.class_names == ["1", "2"]
    assert skipping.skipped == [("1", "empty image (0 bytes)")]
    with pytest.raises(DataError, match="do not apply to a RecordIO pack"):
        open_faceset(rec, root="x")


def test_faceset_pickles_without_its_file_handle(packed):
    import pickle

    fs = RecordIOFaceSet(packed)
    first = fs.read(0)
    clone = pickle.loads(pickle.dumps(fs))  # what spawn-started DataLoader workers receive
    assert clone.reader._handle is None
    np.testing.assert_array_equal(clone.read(0), first)


def write_folder(root, fs, fmt):
    """fs as an identity folder of files in ``fmt`` (PIL format name)."""
    from PIL import Image

    for i, image_id in enumerate(fs.image_ids):  # ids are "<class>/<n>.png"
        path = root / f"{image_id}.{fmt.lower()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(fs.read(i)).save(path, format=fmt, **({"quality": 80} if fmt == "JPEG" else {}))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_stored_jpeg_and_png_are_copied_byte_for_byte(tmp_path, fmt):
    write_folder(tmp_path / "faces", faces(), fmt)
    folder = open_faceset(str(tmp_path / "faces"))
    write_recordio(folder, tmp_path / "a/train.rec", progress=False)
    rec = RecordIOFaceSet(tmp_path / "a/train.rec")
    for i, image_id in enumerate(rec.image_ids):
        original = (tmp_path / "faces" / image_id).read_bytes()
        assert rec.read_bytes(i) == original
        np.testing.assert_array_equal(rec.read(i), folder.read(folder.image_ids.index(image_id)))
    # a pack of a pack (and of its subset) copies the same bytes again
    write_recordio(rec.subset([0, 2, 5]), tmp_path / "b/train.rec", progress=False)
    sub = RecordIOFaceSet(tmp_path / "b/train.rec")
    assert [sub.read_bytes(i) for i in range(3)] == [(tmp_path / "faces" / k).read_bytes() for k in sub.image_ids]


def test_reencode_and_other_formats_are_written_as_jpeg(tmp_path):
    write_folder(tmp_path / "faces", faces(), "BMP")
    for name, kwargs in (("bmp", {}), ("forced", {"reencode": True})):
        src = open_faceset(str(tmp_path / "faces"))
        write_recordio(src, tmp_path / name / "train.rec", quality=100, progress=False, **kwargs)
        rec = RecordIOFaceSet(tmp_path / name / "train.rec")
        assert all(rec.read_bytes(i).startswith(b"\xff\xd8\xff") for i in range(len(rec)))
    write_folder(tmp_path / "jpeg", faces(), "JPEG")
    write_recordio(open_faceset(str(tmp_path / "jpeg")), tmp_path / "j/train.rec", quality=100, progress=False,
                   reencode=True)
    rec = RecordIOFaceSet(tmp_path / "j/train.rec")
    assert all(rec.read_bytes(i) != (tmp_path / "jpeg" / k).read_bytes() for i, k in enumerate(rec.image_ids))


def test_computed_images_have_no_stored_bytes():
    fs = faces()
    assert fs.encoded(0) is None and fs.subset([1]).encoded(0) is None
