"""Five-point face alignment to the ArcFace template.

Coordinates follow the OpenCV / MTCNN convention: pixel ``(i, j)`` has its centre at ``x = j``,
``y = i``. A least-squares similarity (rotation, uniform scale, translation; never a reflection)
maps the five detected landmarks onto the template, and the image is resampled bilinearly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from tailface.data.faceset import FaceSet
from tailface.errors import DataError

#: Left eye, right eye, nose tip, left and right mouth corners (image left/right) in a 112x112 crop.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def arcface_template(output_size: int = 112) -> np.ndarray:
    """The template scaled to an ``output_size x output_size`` crop."""
    if output_size < 8:
        raise ValueError(f"output_size must be at least 8, got {output_size}")
    return ARCFACE_TEMPLATE_112 * (output_size / 112.0)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``dst ~ s R src + t`` (Umeyama 1991), as a 2x3 matrix ``[sR | t]``.

    ``R`` is a proper rotation (det +1): mirrored point sets are not matched by a reflection.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching Nx2 point arrays (N >= 2), got {src.shape} and {dst.shape}")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    var_src = (src_c ** 2).sum() / len(src)
    if var_src <= 0:
        raise ValueError("source points are all identical")
    cov = dst_c.T @ src_c / len(src)
    u, sing, vt = np.linalg.svd(cov)
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = (sing * d).sum() / var_src
    translation = mu_dst - scale * rotation @ mu_src
    return np.hstack([scale * rotation, translation[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (Nx2) mapped by a 2x3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_transform(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, (-linear @ matrix[:, 2])[:, None]])


def warp_affine(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Resample ``image`` so that input point ``p`` lands at ``matrix @ p`` (bilinear; outside is
    black). ``output_size`` is ``(width, height)``."""
    inverse = invert_transform(matrix)
    # PIL samples output pixel centres at (x + 0.5, y + 0.5) in a frame whose input pixel centres
    # are also at +0.5; shift so the matrix acts in the integer-centre frame.
    linear, offset = inverse[:, :2], inverse[:, 2]
    pil_offset = offset + 0.5 - linear @ np.array([0.5, 0.5])
    coeffs = (linear[0, 0], linear[0, 1], pil_offset[0], linear[1, 0], linear[1, 1], pil_offset[1])
    warped = Image.fromarray(_as_rgb(image)).transform(
        output_size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(warped)


def align_face(image: np.ndarray, landmarks5: np.ndarray, output_size: int = 112) -> np.ndarray:
    """``output_size x output_size x 3`` uint8 face whose five landmarks sit on the ArcFace template."""
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise DataError(f"five finite (x, y) landmarks are needed, got {points.tolist()}")
    matrix = estimate_similarity(points, arcface_template(output_size))
    return warp_affine(image, matrix, (output_size, output_size))


def center_crop(image: np.ndarray, output_size: int = 112) -> np.ndarray:
    """Fallback when no landmarks are known: the largest centred square, resized (bilinear)."""
    image = _as_rgb(image)
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(image[top:top + side, left:left + side])
    if side != output_size:
        square = square.resize((output_size, output_size), Image.Resampling.BILINEAR)
    return np.asarray(square)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    return np.ascontiguousarray(image)


class AlignedFaceSet(FaceSet):
    """``parent``'s images aligned on read. ``landmarks`` is N x 5 x 2 (NaN rows: no face found);
    those rows use ``fallback``: ``"center-crop"``, a 5x2 array of landmarks to use instead
    (e.g. the set's mean landmarks), or ``None`` to refuse them (DataError listing them)."""

    def __init__(self, parent: FaceSet, landmarks: np.ndarray, output_size: int = 112,
                 fallback: str | np.ndarray | None = None):
        landmarks = np.asarray(landmarks, dtype=np.float64)
        if landmarks.shape != (len(parent), 5, 2):
            raise ValueError(f"landmarks must be {len(parent)}x5x2, got {landmarks.shape}")
        self.parent = parent
        self.landmarks = landmarks
        self.output_size = output_size
        self.missing = np.flatnonzero(~np.isfinite(landmarks).all(axis=(1, 2)))
        if len(self.missing) and fallback is None:
            raise DataError(f"{parent.source}: {len(self.missing)} of {len(parent)} images have no "
                            f"landmarks (e.g. {', '.join(self.missing_ids(5))}); "
                            f"use a fallback (center-crop) or add their landmarks")
        if isinstance(fallback, str) and fallback != "center-crop":
            raise ValueError(f"fallback must be 'center-crop', landmarks or None, got {fallback!r}")
        self.fallback = fallback
        self.labels, self.class_names = parent.labels, parent.class_names
        self.image_ids, self.source = parent.image_ids, parent.source

    def missing_ids(self, limit: int | None = None) -> list[str]:
        return [self.parent.image_ids[i] for i in self.missing[:limit]]

    def _read(self, i: int) -> np.ndarray:
        image = self.parent.read(i)
        points = self.landmarks[i]
        if not np.isfinite(points).all():
            if isinstance(self.fallback, str):
                return center_crop(image, self.output_size)
            points = self.fallback
        return align_face(image, points, self.output_size)
