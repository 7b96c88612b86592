"""Five-point face alignment to a registered template (:mod:`tailface.data.templates`; default
the ArcFace template).

Coordinates follow the OpenCV / MTCNN convention: pixel ``(i, j)`` has its centre at ``x = j``,
``y = i``. The template maps the five detected landmarks to a 2x3 matrix (for ``arcface`` and
``dlib-chip`` a least-squares similarity: rotation, uniform scale, translation, never a
reflection; for ``facenet-box`` a box crop), and the image is resampled bilinearly. The geometry
(:func:`estimate_similarity`, :func:`apply_transform`, :func:`invert_transform`) lives in
:mod:`tailface.data.similarity` and the ArcFace points in :mod:`tailface.data.templates`; both are
importable from here as before.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from tailface.data.faceset import FaceSet
from tailface.data.similarity import apply_transform, estimate_similarity, invert_transform
from tailface.data.templates import ARCFACE_TEMPLATE_112, Template, arcface_template, get_template
from tailface.errors import DataError

__all__ = ["ARCFACE_TEMPLATE_112", "AlignedFaceSet", "align_face", "apply_transform", "arcface_template",
           "center_crop", "estimate_similarity", "invert_transform", "warp_affine"]


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


def align_face(image: np.ndarray, landmarks5: np.ndarray, output_size: int | None = None,
               template: str | Template = "arcface") -> np.ndarray:
    """``output_size x output_size x 3`` uint8 face cut by ``template`` from its five landmarks
    (default: on the ArcFace template; ``output_size`` None: the template's reference size, 112
    for ArcFace)."""
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise DataError(f"five finite (x, y) landmarks are needed, got {points.tolist()}")
    chosen = get_template(template)
    size = chosen.output_size(output_size)
    return warp_affine(image, chosen.matrix(points, size), (size, size))


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
    """``parent``'s images aligned on read with ``template`` (default ArcFace) at ``output_size``
    (None: the template's reference size). ``landmarks`` is N x 5 x 2 (NaN rows: no face found);
    those rows use ``fallback``: ``"center-crop"``, a 5x2 array of landmarks to use instead
    (e.g. the set's mean landmarks), or ``None`` to refuse them (DataError listing them)."""

    def __init__(self, parent: FaceSet, landmarks: np.ndarray, output_size: int | None = None,
                 fallback: str | np.ndarray | None = None, template: str | Template = "arcface"):
        landmarks = np.asarray(landmarks, dtype=np.float64)
        if landmarks.shape != (len(parent), 5, 2):
            raise ValueError(f"landmarks must be {len(parent)}x5x2, got {landmarks.shape}")
        self.parent = parent
        self.landmarks = landmarks
        self.template = get_template(template)
        self.output_size = self.template.output_size(output_size)
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
        return align_face(image, points, self.output_size, self.template)
