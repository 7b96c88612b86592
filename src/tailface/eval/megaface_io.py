"""MegaFace devkit feature files (one feature vector per file, as InsightFace's
``gen_megaface.py`` writes them for the devkit): a header of four little-endian int32 values
``rows, cols, element size, OpenCV type`` = ``(D, 1, 4, 5)`` (5 = ``CV_32F``) followed by ``rows *
cols`` float32 values."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tailface.errors import DataError

_HEADER = np.dtype("<i4")
_CV_32F = 5


def write_megaface_feature(path, vec) -> Path:
    """Write one feature vector (atomically: a temporary file, then rename)."""
    path = Path(path)
    v = np.asarray(vec, dtype="<f4").ravel()
    if v.size == 0 or not np.isfinite(v).all():
        raise DataError(f"{path}: refusing to write an empty or non-finite feature")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(np.array([v.size, 1, 4, _CV_32F], dtype=_HEADER).tobytes())
        f.write(v.tobytes())
    os.replace(tmp, path)
    return path


def read_megaface_feature(path) -> np.ndarray:
    """One feature vector (float32, ``rows * cols`` values) from a devkit feature file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read MegaFace feature file ({exc.strerror})") from None
    if len(data) < 16:
        raise DataError(f"{path}: too short for a MegaFace feature header ({len(data)} bytes)")
    rows, cols, elem, cv_type = np.frombuffer(data[:16], dtype=_HEADER).tolist()
    if rows <= 0 or cols <= 0 or elem != 4 or cv_type != _CV_32F:
        raise DataError(f"{path}: not a float32 MegaFace feature (header rows={rows} cols={cols} "
                        f"elem={elem} type={cv_type})")
    if len(data) != 16 + 4 * rows * cols:
        raise DataError(f"{path}: header announces {rows}x{cols} floats, file holds "
                        f"{(len(data) - 16) / 4:g}")
    return np.frombuffer(data[16:], dtype="<f4").astype(np.float32)
