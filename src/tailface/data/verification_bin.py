"""InsightFace verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``): read and write.

A ``.bin`` file is a pickle of ``(bins, issame_list)``: ``bins`` the encoded images (JPEG/PNG
bytes), two per pair in pair order (pair ``k`` = images ``2k`` and ``2k + 1``), ``issame_list``
one boolean per pair. Files written by Python 2 hold ``str`` images (read as bytes, as InsightFace
does with ``encoding="bytes"``); some tools store numpy arrays (uint8 image buffers, a bool
``issame`` array).

Reading never runs code from the file: :class:`RestrictedUnpickler` admits only the built-in
containers and scalars (bytes, str, lists, tuples, booleans, ints, floats, None), numpy arrays and
scalars of plain (not object) dtypes, and ``_codecs.encode(text, "latin1")`` (how Python 3 writes
bytes under pickle protocols 0-2); any other global (``os.system``, ``builtins.open``,
``builtins.eval``, ...) is refused with a :class:`DataError` before anything is called.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.images import decode_image, encode_jpeg, is_jpeg_or_png
from tailface.data.ordering import rows_for
from tailface.errors import DataError

try:
    from numpy._core import multiarray  # numpy 2
except ImportError:  # numpy 1.x
    from numpy.core import multiarray  # type: ignore[no-redef]


def _latin1_encode(text, encoding="latin1", errors="strict"):
    if encoding not in ("latin1", "latin-1") or errors != "strict" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not admitted")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # pickles name either
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose only admitted globals are numpy's array/scalar rebuilders and a
    latin-1 ``_codecs.encode``; everything else raises ``pickle.UnpicklingError``."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        allowed = _numpy_globals()
        if (module, name) in allowed:
            return allowed[(module, name)]
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not admitted")


def restricted_loads(data: bytes):
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _check_plain(obj, path) -> None:
    """No numpy object arrays (the unpickler admits no other class, so the rest is plain data)."""
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    for item in items:
        if isinstance(item, np.ndarray) and item.dtype.hasobject:
            raise DataError(f"{path}: not an InsightFace verification .bin (object array)")


@dataclass
class VerificationBin:
    images: list[bytes]    # encoded images, 2 per pair
    issame: np.ndarray     # bool, one per pair
    source: str

    def __len__(self) -> int:
        return len(self.issame)


def _as_bytes(item, path: Path, i: int) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, str):  # a Python 2 str read without encoding="bytes"
        return item.encode("latin1")
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise DataError(f"{path}: image {i} is a {type(item).__name__}, not encoded image bytes")


def read_bin(path) -> VerificationBin:
    """Parse a verification ``.bin`` safely; :class:`DataError` naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: verification .bin file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    try:
        obj = restricted_loads(data)
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: refused to load: {exc} (a verification .bin holds only image bytes and "
                        "booleans)") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DataError(f"{path}: not an InsightFace verification .bin (expected a pickled (bins, issame_list) "
                        f"pair, got {type(obj).__name__})")
    bins, issame = obj
    if not isinstance(bins, (list, tuple, np.ndarray)) or not isinstance(issame, (list, tuple, np.ndarray)):
        raise DataError(f"{path}: bins and issame_list must be sequences, got {type(bins).__name__} and "
                        f"{type(issame).__name__}")
    _check_plain(bins, path)
    _check_plain(issame, path)
    flags = list(issame)
    if not all(isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1))
               for v in flags):
        raise DataError(f"{path}: issame_list must hold booleans")
    if len(bins) != 2 * len(flags):
        raise DataError(f"{path}: {len(bins)} images for {len(flags)} pairs (expected 2 images per pair, "
                        f"{2 * len(flags)})")
    if not flags:
        raise DataError(f"{path}: no pairs")
    images = [_as_bytes(b, path, i) for i, b in enumerate(bins)]
    return VerificationBin(images, np.asarray(flags, dtype=bool), str(path))


def write_bin(path, images: list[bytes], issame) -> Path:
    """Write ``(images, issame_list)`` as InsightFace does (pickle protocol 4), atomically."""
    path = Path(path)
    issame = [bool(v) for v in issame]
    if len(images) != 2 * len(issame):
        raise DataError(f"{path}: {len(images)} images for {len(issame)} pairs")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(([bytes(b) for b in images], issame), f, protocol=4)
    os.replace(tmp, path)
    return path


class BinFaceSet(FaceSet):
    """The images of a verification .bin in file order (decoded on read); labels are all 0, ids
    ``"<k>/0"`` and ``"<k>/1"`` for the two images of pair ``k``."""

    def __init__(self, vbin: VerificationBin):
        self.vbin, self.source = vbin, vbin.source
        n = len(vbin.images)
        self.labels = np.zeros(n, dtype=np.int64)
        self.class_names = ["pairs"]
        self.image_ids = [f"{i // 2}/{i % 2}" for i in range(n)]

    def _read(self, i: int) -> np.ndarray:
        return decode_image(self.vbin.images[i], f"{self.source}#{i}")

    def encoded(self, i: int) -> bytes | None:
        return self.vbin.images[i]


def bin_files(folder) -> list[Path]:
    """The verification ``.bin`` files directly in ``folder``, sorted by name (a verification suite:
    lfw, cfp_fp, agedb_30, calfw, cplfw, ...); :class:`DataError` naming the folder when it is
    missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: verification folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".bin")
    if not files:
        raise DataError(f"{folder}: no verification .bin files in this folder")
    return files


class BinSuiteFaceSet(FaceSet):
    """Several verification sets one after another (set order, then each file's order); image ids
    ``"<name>/<k>/<j>"`` (image ``j`` of pair ``k`` of set ``name``), labels all 0."""

    def __init__(self, parts: list[FaceSet], names: list[str], source: str):
        if len(parts) != len(names) or len(set(names)) != len(names):
            raise ValueError(f"{source}: one distinct name per set is needed, got {names}")
        self.parts, self.names, self.source = list(parts), list(names), source
        sizes = [len(p) for p in self.parts]
        self.owner = np.repeat(np.arange(len(sizes)), sizes)
        self.local = np.concatenate([np.arange(n) for n in sizes])
        self.labels = np.zeros(len(self.owner), dtype=np.int64)
        self.class_names = ["pairs"]
        self.image_ids = [f"{name}/{image_id}" for name, part in zip(names, parts) for image_id in part.image_ids]

    def _read(self, i: int) -> np.ndarray:
        return self.parts[self.owner[i]].read(int(self.local[i]))

    def encoded(self, i: int) -> bytes | None:
        return self.parts[self.owner[i]].encoded(int(self.local[i]))


def pack_pairs_bin(faceset: FaceSet, pairs, out, quality: int = 95) -> tuple[Path, int]:
    """A .bin of ``pairs`` (:class:`tailface.eval.lfw_pairs.Pairs`, e.g. LFW's pairs.txt) with the
    images of ``faceset`` matched on image ids (stored JPEG/PNG bytes copied, others encoded as
    JPEG). Returns (path, number of pairs)."""
    ids = pairs.left + pairs.right
    rows = rows_for(list(faceset.image_ids), ids, str(faceset.source), allow_extra=True)
    n = len(pairs.left)
    images: list[bytes] = []
    for k in range(n):
        for row in (rows[k], rows[n + k]):
            data = faceset.encoded(int(row))
            if data is None or not is_jpeg_or_png(data):
                data = encode_jpeg(faceset.read(int(row)), quality)
            images.append(data)
    return write_bin(out, images, pairs.same), n
