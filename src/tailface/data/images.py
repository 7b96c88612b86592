"""Decode image files or bytes to ``HxWx3`` uint8 RGB arrays, with errors that name the file.

Decoding is forced to completion (``Image.load()``), so a truncated JPEG fails here, with the file
name, rather than later as a half-grey image.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tailface.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Encoded image bytes -> ``HxWx3`` uint8 RGB (grayscale, palette and RGBA are converted).

    ``name`` (a file, or ``file#key`` for a record) is what error messages show."""
    if len(data) == 0:
        raise DataError(f"{name}: empty image (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except UnidentifiedImageError:
        raise DataError(f"{name}: not a readable image ({len(data)} bytes, unknown format)") from None
    except Image.DecompressionBombError as exc:  # PIL's guard against huge images: not a face crop
        raise DataError(f"{name}: image too large to decode: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: corrupt or truncated image: {exc}") from None
    return np.array(rgb, dtype=np.uint8)  # a writable copy


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of the image file at ``path``, with a DataError naming it when unreadable."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file: {exc}") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode the image file at ``path`` (see :func:`decode_image`)."""
    return decode_image(read_file_bytes(path), str(path))


def is_jpeg_or_png(data: bytes) -> bool:
    """Whether ``data`` starts like a JPEG or PNG file (the formats every .rec reader decodes)."""
    return data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """``HxWx3`` uint8 RGB -> JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
