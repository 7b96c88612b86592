"""MXNet/InsightFace RecordIO (``.rec`` + ``.idx``) without mxnet.

Byte format (dmlc-core): each record is a little-endian ``uint32`` magic ``0xced7230a``, a
``uint32`` ``lrec`` (``cflag = lrec >> 29``, ``length = lrec & (2**29 - 1)``) and ``length`` payload
bytes padded with zeros to a multiple of 4. A payload holding the magic word at a 4-aligned
position is split there into chunks (``cflag`` 1 = first, 2 = middle, 3 = last; 0 = unsplit) and
the magic word is dropped; the reader concatenates the chunks re-inserting it. The ``.idx`` file has
``key<TAB>offset`` lines. An image record's payload is the ``IRHeader`` (``<IfQQ``: flag, label, id,
id2), then ``flag`` float32 labels when ``flag > 0``, then the encoded image.

Two layouts are read by :class:`RecordIOFaceSet`:

* InsightFace (MS1M, Glint360K, WebFace packs, and what :func:`write_recordio` writes): record 0 has
  ``flag > 0`` and labels ``[A, B]``; keys ``1..A-1`` are images, keys ``A..B-1`` identity records
  whose labels are the ``[start, end)`` key range of that identity's images.
  A pack whose record 0 says ``B == A`` (no identity records) takes its labels from the image
  headers instead, as InsightFace's ``MXFaceDataset`` does.
* plain im2rec: every key is an image whose label is the header label (or the first of ``flag``
  labels); labels must be integers. Sparse labels are mapped densely, their values kept as names.
"""

from __future__ import annotations

import io
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from tqdm import tqdm

from tailface.data.faceset import FaceSet
from tailface.data.images import decode_image, encode_jpeg, is_jpeg_or_png
from tailface.errors import DataError

log = logging.getLogger(__name__)

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_CHUNK_HEAD = struct.Struct("<II")
_IR = struct.Struct("<IfQQ")
_LENGTH_MASK = (1 << 29) - 1
_FLOAT32_EXACT = 1 << 24  # integers above this are not exact as float32 labels

CLASSES_FILE = "classes.txt"
IMAGE_IDS_FILE = "image_ids.txt"
PROPERTY_FILE = "property"


@dataclass
class IRHeader:
    """Image record header. ``label`` is a float, or a float32 array when ``flag > 0``."""

    flag: int
    label: float | np.ndarray
    id: int = 0
    id2: int = 0

    @property
    def first_label(self) -> float:
        return float(cast(np.ndarray, self.label)[0]) if self.flag > 0 else float(self.label)


def pack_record(header: IRHeader, payload: bytes = b"") -> bytes:
    """IRHeader + payload, as mxnet's ``recordio.pack``."""
    if isinstance(header.label, (int, float, np.floating, np.integer)):
        return _IR.pack(0, float(header.label), header.id, header.id2) + payload
    labels = np.asarray(header.label, dtype="<f4").reshape(-1)
    return _IR.pack(len(labels), 0.0, header.id, header.id2) + labels.tobytes() + payload


def unpack_record(record: bytes, name: str = "<record>") -> tuple[IRHeader, bytes]:
    """Record bytes -> (IRHeader, rest of the payload), as mxnet's ``recordio.unpack``."""
    if len(record) < _IR.size:
        raise DataError(f"{name}: record of {len(record)} bytes is shorter than its {_IR.size}-byte header")
    flag, label, id_, id2 = _IR.unpack_from(record)
    rest = _IR.size
    if flag > 0:
        end = rest + 4 * flag
        if end > len(record):
            raise DataError(f"{name}: header announces {flag} labels but the record has {len(record)} bytes")
        label = np.frombuffer(record, dtype="<f4", count=flag, offset=rest)
        rest = end
    return IRHeader(flag, label, id_, id2), record[rest:]


def read_index(path_idx: str | os.PathLike) -> dict[int, int]:
    """``.idx`` file -> {key: offset}, in file order."""
    path_idx = Path(path_idx)
    try:
        text = path_idx.read_text(encoding="ascii")
    except FileNotFoundError:
        raise DataError(f"{path_idx}: index file not found (a .rec needs its .idx beside it)") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path_idx}: cannot read index file: {exc}") from None
    index: dict[int, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError
            key, offset = int(fields[0]), int(fields[1])
            if offset < 0:
                raise ValueError
        except ValueError:
            raise DataError(f"{path_idx}:{lineno}: malformed index line {line!r} "
                            f"(expected 'key<TAB>offset', two non-negative integers)") from None
        if key in index:
            raise DataError(f"{path_idx}:{lineno}: key {key} appears twice")
        index[key] = offset
    return index


class RecordIOReader:
    """Random access to the records of a ``.rec`` by key (offsets from the ``.idx``).

    The file is opened lazily and reopened in each process (``os.getpid()`` changes under fork),
    so one reader can be shared by DataLoader workers; it also pickles without its handle."""

    def __init__(self, path_rec: str | os.PathLike, path_idx: str | os.PathLike | None = None):
        self.path_rec = Path(path_rec)
        self.path_idx = Path(path_idx) if path_idx is not None else self.path_rec.with_suffix(".idx")
        if not self.path_rec.is_file():
            raise DataError(f"{self.path_rec}: record file not found")
        self.size = self.path_rec.stat().st_size
        self.index = read_index(self.path_idx)
        for key, offset in self.index.items():
            if offset + _CHUNK_HEAD.size > self.size:
                raise DataError(f"{self.path_idx}: offset {offset} of key {key} is beyond the end of "
                                f"{self.path_rec} ({self.size} bytes); wrong or truncated .rec?")
        self._handle: io.BufferedReader | None = None
        self._pid: int | None = None

    @property
    def keys(self) -> list[int]:
        return list(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle = open(self.path_rec, "rb")
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handle"], state["_pid"] = None, None
        return state

    def read(self, key: int) -> bytes:
        """The payload of record ``key`` (split chunks joined)."""
        try:
            offset = self.index[key]
        except KeyError:
            raise DataError(f"{self.path_idx}: no record with key {key}") from None
        return self.read_at(offset, key)

    def read_at(self, offset: int, key: int | str = "?") -> bytes:
        f = self._file()
        f.seek(offset)
        parts: list[bytes] = []
        while True:
            where = f"{self.path_rec}: record {key} at offset {offset}"
            head = f.read(_CHUNK_HEAD.size)
            if len(head) < _CHUNK_HEAD.size:
                raise DataError(f"{where}: truncated (file ends inside a record header)")
            magic, lrec = _CHUNK_HEAD.unpack(head)
            if magic != MAGIC:
                raise DataError(f"{where}: wrong magic 0x{magic:08x} (expected 0x{MAGIC:08x}); "
                                f"the .idx does not match this .rec or the file is corrupt")
            cflag, length = lrec >> 29, lrec & _LENGTH_MASK
            expected = (0, 1) if not parts else (2, 3)
            if cflag not in expected:
                raise DataError(f"{where}: chunk flag {cflag} where {' or '.join(map(str, expected))} "
                                f"was expected (broken split record)")
            data = f.read(length)
            if len(data) < length:
                raise DataError(f"{where}: truncated (length {length} runs past the end of the file, "
                                f"{self.size} bytes)")
            parts.append(data)
            pad = -length % 4
            if pad:
                f.seek(pad, os.SEEK_CUR)
            if cflag in (0, 3):
                return _MAGIC_BYTES.join(parts)
            offset = f.tell()

    def read_header(self, key: int) -> tuple[IRHeader, bytes]:
        return unpack_record(self.read(key), f"{self.path_rec}#{key}")

    def image_size(self, key: int) -> int:
        """Bytes of record ``key`` after its IRHeader and labels (the encoded image), reading only
        the first bytes when the record is not split."""
        offset = self.index.get(key)
        if offset is None:
            raise DataError(f"{self.path_idx}: no record with key {key}")
        f = self._file()
        f.seek(offset)
        head = f.read(_CHUNK_HEAD.size + 4)
        if len(head) == _CHUNK_HEAD.size + 4:
            magic, lrec, flag = struct.unpack("<III", head)
            length = lrec & _LENGTH_MASK
            if magic == MAGIC and lrec >> 29 == 0 and length >= _IR.size + 4 * flag:
                return length - _IR.size - 4 * flag
        return len(self.read_header(key)[1])

    def peek_header(self, key: int, max_labels: int = 8) -> IRHeader:
        """The IRHeader of record ``key``, reading only its first bytes when it is not split."""
        want = _IR.size + 4 * max_labels
        offset = self.index.get(key)
        if offset is None:
            raise DataError(f"{self.path_idx}: no record with key {key}")
        f = self._file()
        f.seek(offset)
        head = f.read(_CHUNK_HEAD.size)
        if len(head) == _CHUNK_HEAD.size:
            magic, lrec = _CHUNK_HEAD.unpack(head)
            if magic == MAGIC and lrec >> 29 == 0:
                prefix = f.read(min(want, lrec & _LENGTH_MASK))
                flag = struct.unpack_from("<I", prefix)[0] if len(prefix) >= 4 else 0
                if len(prefix) >= _IR.size and flag <= max_labels:
                    return unpack_record(prefix, f"{self.path_rec}#{key}")[0]
        return self.read_header(key)[0]  # split, short or broken: the full path explains errors


class RecordIOWriter:
    """Writes records and the ``.idx``. Both go to ``*.tmp`` files that replace the targets only
    on :meth:`close` (so an interrupted write never leaves a half-written pack under the real name);
    leaving a ``with`` block by an exception deletes them."""

    def __init__(self, path_rec: str | os.PathLike, path_idx: str | os.PathLike | None = None):
        self.path_rec = Path(path_rec)
        self.path_idx = Path(path_idx) if path_idx is not None else self.path_rec.with_suffix(".idx")
        self._tmp_rec = self.path_rec.with_name(self.path_rec.name + ".tmp")
        self._tmp_idx = self.path_idx.with_name(self.path_idx.name + ".tmp")
        self.path_rec.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self._tmp_rec, "wb")
        self.index: dict[int, int] = {}
        self._sizes: dict[int, int] = {}

    @staticmethod
    def encode(payload: bytes) -> bytes:
        """Record bytes for ``payload``, split at 4-aligned magic words as dmlc-core does."""
        n = len(payload)
        out, start = [], 0
        for i in range(0, n - n % 4, 4):
            if payload[i:i + 4] == _MAGIC_BYTES:
                out.append(_chunk(1 if start == 0 else 2, payload[start:i]))
                start = i + 4
        out.append(_chunk(3 if start else 0, payload[start:]))
        return b"".join(out)

    def write(self, key: int, payload: bytes) -> None:
        if key in self.index:
            raise ValueError(f"key {key} written twice")
        if len(payload) > _LENGTH_MASK:
            raise ValueError(f"record of {len(payload)} bytes is too large for RecordIO")
        data = self.encode(payload)
        self.index[key] = self._f.tell()
        self._sizes[key] = len(data)
        self._f.write(data)

    def overwrite(self, key: int, payload: bytes) -> None:
        """Replace record ``key`` by one of exactly the same encoded size (e.g. a header whose
        counts are known only at the end)."""
        data = self.encode(payload)
        if len(data) != self._sizes[key]:
            raise ValueError(f"record {key}: new encoding has {len(data)} bytes, old {self._sizes[key]}")
        end = self._f.tell()
        self._f.seek(self.index[key])
        self._f.write(data)
        self._f.seek(end)

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        with open(self._tmp_idx, "w", encoding="ascii") as f:
            f.writelines(f"{k}\t{o}\n" for k, o in self.index.items())
            f.flush()
            os.fsync(f.fileno())
        # both files are complete and on disk; the old .idx goes first so that a kill between the
        # two renames leaves a .rec without .idx (an error naming it), never a mismatched pair
        if self.path_idx.exists():
            self.path_idx.unlink()
        os.replace(self._tmp_rec, self.path_rec)
        os.replace(self._tmp_idx, self.path_idx)

    def abort(self) -> None:
        self._f.close()
        for p in (self._tmp_rec, self._tmp_idx):
            p.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _chunk(cflag: int, data: bytes) -> bytes:
    return _CHUNK_HEAD.pack(MAGIC, (cflag << 29) | len(data)) + data + b"\0" * (-len(data) % 4)


class RecordIOFaceSet(FaceSet):
    """A ``.rec`` (with its ``.idx`` beside it) as a FaceSet, in either layout (module docstring).

    Class names come from ``classes.txt`` beside the ``.rec`` when present (as written by
    :func:`write_recordio`), else the label numbers; image ids from ``image_ids.txt`` beside it,
    else the record keys.

    Bad images: as for the file sources, the cheap check happens up front and decoding at
    :meth:`read` time (a corrupt record raises a DataError naming ``file#key``). Image records with
    an empty image are an error when read; with ``skip_bad=True`` every record's length is checked
    on opening (one small read per image) and empty ones are left out, listed in ``skipped``."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None,
                 skip_bad: bool = False):
        self.reader = RecordIOReader(rec_path, idx_path)
        self.source = str(self.reader.path_rec)
        header0 = self.reader.read_header(0)[0] if 0 in self.reader.index else None
        if header0 is not None and header0.flag > 0:
            self.layout = "insightface"
            self.keys, self.labels, names = self._insightface_layout(header0)
        else:
            self.layout = "im2rec"
            self.keys, self.labels, names = self._im2rec_layout()
        folder = self.reader.path_rec.parent
        self.class_names = _sidecar(folder / CLASSES_FILE, len(names), "classes", self.source) or names
        self.image_ids = (_sidecar(folder / IMAGE_IDS_FILE, len(self.keys), "images", self.source)
                          or [str(k) for k in self.keys])
        self.skipped: list[tuple[str, str]] = []
        if skip_bad:
            self._drop_empty_images()
        self.check_labels()

    def _drop_empty_images(self) -> None:
        keep = np.array([self.reader.image_size(int(k)) > 0 for k in self.keys], dtype=bool)
        if keep.all():
            return
        self.skipped = [(self.image_ids[i], "empty image (0 bytes)") for i in np.flatnonzero(~keep)]
        log.warning("%s: skipped %d of %d image records with no image bytes (e.g. %s)", self.source,
                    len(self.skipped), len(keep), self.skipped[0][0])
        used, dense = np.unique(self.labels[keep], return_inverse=True)
        self.keys, self.labels = self.keys[keep], dense.reshape(-1).astype(np.int64)
        self.class_names = [self.class_names[c] for c in used]
        self.image_ids = [s for s, k in zip(self.image_ids, keep) if k]

    def _insightface_layout(self, header0: IRHeader):
        rec, idx = self.source, self.reader.path_idx
        if header0.flag < 2:
            raise DataError(f"{rec}: record 0 has {header0.flag} label(s); the InsightFace layout needs "
                            f"[first identity key, end key]")
        a, b = (float(v) for v in cast(np.ndarray, header0.label)[:2])
        if not (a.is_integer() and b.is_integer() and 1 <= a <= b):
            raise DataError(f"{rec}: record 0 labels [{a}, {b}] are not a valid key range")
        a, b = int(a), int(b)
        keys = set(self.reader.index)
        missing = [k for k in range(b) if k not in keys]
        if missing:
            raise DataError(f"{rec}: header range (images 1..{a - 1}, identities {a}..{b - 1}) does not "
                            f"match the keys of {idx}: {len(missing)} keys in [0, {b}) are missing "
                            f"(e.g. {missing[:3]})")
        extra = sorted(k for k in keys if not 0 <= k < b)
        if extra:  # InsightFace's own reader ignores them too
            log.warning("%s: ignoring %d records outside the header's key range [0, %d) (e.g. key %d)",
                        rec, len(extra), b, extra[0])
        image_keys = np.arange(1, a, dtype=np.int64)
        if b == a:  # no identity records: labels from the image headers, as MXFaceDataset reads them
            return self._labels_from_headers(image_keys)
        labels = np.full(a - 1, -1, dtype=np.int64)
        names: list[str] = []
        for cls, key in enumerate(range(a, b)):
            h = self.reader.peek_header(key)
            lo, hi = (float(v) for v in cast(np.ndarray, h.label)[:2]) if h.flag >= 2 else (-1.0, -1.0)
            if not (lo.is_integer() and hi.is_integer() and 1 <= lo <= hi <= a):
                raise DataError(f"{rec}: identity record {key} points to images [{lo}, {hi}) outside the "
                                f"image keys [1, {a})")
            lo, hi = int(lo), int(hi)
            if (labels[lo - 1:hi - 1] >= 0).any():
                raise DataError(f"{rec}: identity record {key} range [{lo}, {hi}) overlaps another identity")
            labels[lo - 1:hi - 1] = cls
            names.append(_label_name(self.reader.peek_header(lo).first_label) if hi > lo else str(cls))
        if len(set(names)) != len(names):
            log.warning("%s: the image labels do not tell the identities apart; classes are named by "
                        "identity record order instead", rec)
            names = [str(c) for c in range(len(names))]
        orphans = np.flatnonzero(labels < 0)
        if len(orphans):
            raise DataError(f"{rec}: {len(orphans)} image records belong to no identity record "
                            f"(e.g. key {int(orphans[0]) + 1})")
        return image_keys, labels, names

    def _im2rec_layout(self):
        return self._labels_from_headers(np.array(sorted(self.reader.index), dtype=np.int64))

    def _labels_from_headers(self, keys: np.ndarray):
        raw = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            value = self.reader.peek_header(int(key)).first_label
            if not float(value).is_integer():
                raise DataError(f"{self.source}: record {key} has label {value}, not an integer identity")
            raw[i] = int(value)
        values, dense = np.unique(raw, return_inverse=True)
        return keys, dense.reshape(-1).astype(np.int64), [str(v) for v in values]

    def read_bytes(self, i: int) -> bytes:
        """Encoded image ``i`` as stored."""
        return self.reader.read_header(int(self.keys[i]))[1]

    def encoded(self, i: int) -> bytes | None:
        data = self.read_bytes(i)
        return data if is_jpeg_or_png(data) else None

    def _read(self, i: int) -> np.ndarray:
        key = int(self.keys[i])
        return decode_image(self.reader.read_header(key)[1], f"{self.source}#{key}")


def _label_name(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _sidecar(path: Path, expected: int, what: str, rec: str) -> list[str] | None:
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) != expected:
        raise DataError(f"{path}: {len(lines)} lines but {rec} has {expected} {what}; "
                        f"the file belongs to another pack (remove it or repack)")
    return lines


@dataclass
class PackResult:
    """What :func:`write_recordio` wrote."""

    path: Path
    num_images: int
    num_classes: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image id, error)


def write_recordio(faceset: FaceSet, out_rec: str | os.PathLike, quality: int = 95,
                   skip_bad: bool = False, progress: bool = True, reencode: bool = False) -> PackResult:
    """Pack any FaceSet into an InsightFace-layout ``.rec``/``.idx``, with ``classes.txt``,
    ``image_ids.txt`` and ``property`` (``classes,height,width``) beside it.

    Images stored as JPEG or PNG (files, records: :meth:`FaceSet.encoded`) are copied byte for
    byte; computed ones (aligned, synthetic), and every image with ``reencode``, are written as
    JPEG at ``quality``. Images are grouped by class. Every image is decoded once: an undecodable
    one raises its DataError, or with ``skip_bad`` is left out and reported (classes left empty
    are dropped). All files are written under temporary names and renamed at the end."""
    out_rec = Path(out_rec)
    n = len(faceset)
    if n + faceset.num_classes + 1 >= _FLOAT32_EXACT:
        raise DataError(f"{faceset.source}: {n} images are too many for float32 record labels")
    order = np.argsort(np.asarray(faceset.labels), kind="stable")
    skipped: list[tuple[str, str]] = []
    ranges: list[tuple[int, int]] = []
    names: list[str] = []
    image_ids: list[str] = []
    shape = None
    folder = out_rec.parent
    with RecordIOWriter(out_rec) as writer:
        writer.write(0, pack_record(IRHeader(2, np.zeros(2, "<f4"))))
        key = 1
        bar = tqdm(order, desc=f"packing {out_rec.name}", unit="img", disable=not progress)
        start, current = key, None
        for i in bar:
            label = int(faceset.labels[i])
            if label != current:
                if current is not None and key > start:
                    ranges.append((start, key))
                    names.append(faceset.class_names[current])
                start, current = key, label
            try:
                payload, image = _image_payload(faceset, int(i), quality, reencode)
            except DataError as exc:
                if not skip_bad:
                    raise
                skipped.append((faceset.image_ids[i], str(exc)))
                continue
            shape = shape or image.shape[:2]
            writer.write(key, pack_record(IRHeader(0, float(len(names)), key), payload))
            image_ids.append(faceset.image_ids[i])
            key += 1
        if current is not None and key > start:
            ranges.append((start, key))
            names.append(faceset.class_names[current])
        if not ranges:
            raise DataError(f"{faceset.source}: no readable images to pack")
        first_identity = key
        for lo, hi in ranges:
            writer.write(key, pack_record(IRHeader(2, np.array([lo, hi], "<f4"), key)))
            key += 1
        writer.overwrite(0, pack_record(IRHeader(2, np.array([first_identity, key], "<f4"))))
    _write_text(folder / CLASSES_FILE, names)
    _write_text(folder / IMAGE_IDS_FILE, image_ids)
    assert shape is not None  # ranges is not empty: at least one image was written
    _write_text(folder / PROPERTY_FILE, [f"{len(names)},{shape[0]},{shape[1]}"])
    if skipped:
        log.warning("%s: skipped %d undecodable images (e.g. %s)", faceset.source, len(skipped), skipped[0][1])
    return PackResult(out_rec, len(image_ids), len(names), skipped)


def _image_payload(faceset: FaceSet, i: int, quality: int, reencode: bool) -> tuple[bytes, np.ndarray]:
    """(bytes to store, decoded image) for image ``i``; reading first validates stored bytes."""
    image = faceset.read(i)
    stored = None if reencode else faceset.encoded(i)
    return (stored if stored is not None else encode_jpeg(image, quality)), image


def _write_text(path: Path, lines: list[str]) -> None:
    bad = [s for s in lines if "\n" in s or "\r" in s]
    if bad:
        raise DataError(f"{path}: name {bad[0]!r} contains a line break")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{s}\n" for s in lines), encoding="utf-8")
    os.replace(tmp, path)
