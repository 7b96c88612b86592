"""Alignment templates: where a face's five landmarks go in the crop, as a registry.

A network is trained on one crop geometry and loses accuracy on another (issue 23: a model trained
on dlib's 150x150 chips scored 89.3% on LFW cut to tailface's ArcFace crops, 99.0% on its own
chips). A :class:`Template` is one small record: its ``name``, its ``reference_size`` (the side of
the square crop its geometry is defined for; the output size when none is asked), and
``transform(landmarks, size) -> 2x3`` matrix mapping image points to crop points (integer pixel
centres, :mod:`tailface.data.similarity`) for an ``size x size`` crop. Registering one is one line::

    register_template(similarity_template("my-crop", POINTS_AT_128, 128, "what it is"))

Landmarks are always tailface's five, in image order: left eye centre, right eye centre, nose tip,
left and right mouth corner (left/right as seen in the image; MTCNN's points).

The shipped templates:

``arcface`` (reference 112): the ArcFace / InsightFace 5-point template :data:`ARCFACE_TEMPLATE_112`,
scaled by ``size / 112`` about the origin (pixel centre (0, 0)); the least-squares similarity
(Umeyama) from the landmarks onto it. tailface's default and the only geometry before issue 23.

``dlib-chip`` (reference 150): dlib's face chip, ``get_face_chip(img, shape, size=150,
padding=0.25)`` as used with its ResNet face recogniser. dlib's ``get_face_chip_details`` places
a mean face shape (coordinates in [0, 1]) in the chip by ``chip = (padding + m) / (1 + 2 padding)
* size`` and fits a least-squares similarity from the detected points to those positions (from its
68-point mean shape, the points 17-67 without the brows 17-26 and the lower lip; or, for its
5-point predictor, the four eye corners and the bottom of the nose). tailface's five points are
not among dlib's five, so their targets are derived from the same 68-point mean shape (iBUG
numbering; 36-41 are the eye seen on the image's left, 42-47 the other):

- eye centres: the mean of the six points of each eye, ``m = (0.2254918, 0.2159903)`` (points
  36-41) and ``(0.7547613, 0.2159903)`` (42-47);
- nose tip: point 30, ``(0.490127, 0.515625)``;
- mouth corners: points 48 and 54, ``(0.254149, 0.780233)`` and ``(0.726104, 0.780233)``;

and with padding 0.25, ``(0.25 + m) / 1.5 * 150 = (0.25 + m) * 100``: :data:`DLIB_CHIP_150`
= (47.549, 46.599), (100.476, 46.599), (74.013, 76.563), (50.415, 103.023), (97.610, 103.023).
A face of exactly the mean shape lands on the same chip in both constructions. Differences that
remain: dlib fits its own points (eye corners, nose bottom), so for a real face the fitted
rotation and scale can differ slightly from the fit to these five; the eye centres of dlib's
5-point mean (mid-points of its corners, (0.2273, 0.2214) and (0.7528, 0.2212)) lie within 0.6
chip pixels of the 68-point ones used here; and dlib's extraction rectangle (``chip_details`` ->
``get_mapping_to_chip``) maps the chip's corner pixels 0 and ``size - 1`` onto a rectangle of
width ``size * s - 1`` centred on the fitted image of chip point ``size / 2``, which shifts its
chip by half a chip pixel (up-left) against the fitted similarity (and scales it by ``(size s - 1)
/ ((size - 1) s)``, ``s`` the image pixels per chip pixel); tailface uses the fitted similarity
itself.

``facenet-box`` (reference 160): a FaceNet-style box crop (davidsandberg/facenet's
``align_dataset_mtcnn``: the MTCNN face box grown by a margin, cut out without rotation and resized
to 160x160). Only five points are known, so the detector box is estimated from them, defined
against the ArcFace template (whose 112x112 crop is a face box): with ``B_ref`` the landmarks'
bounding box of :data:`ARCFACE_TEMPLATE_112` (extent ``e_ref = max(w, h) = 40.8641``, the
height; centre ``c_ref = (55.9132, 71.93345)``) and ``B`` that of the given landmarks (extent
``e``, centre ``c``), ``k = e / e_ref`` and

    face box:  square, side ``112 k``, centre ``c + k (55.5 - c_ref)``
               (= the 112x112 ArcFace crop, pixel edges -0.5 .. 111.5, for landmarks on the template)
    crop box:  the face box grown by ``margin`` = 0.2 of its side (0.1 each side), same centre
    crop:      ``out = (p - corner) * size / side - 0.5``, ``corner`` = the crop box's top-left
               edge, ``side`` its side (its edges land on the output's pixel edges)

The margin: FaceNet adds a fixed 32 pixels (``--margin 32``, its LFW evaluation at 160x160) in
source pixels; 0.2 of the side is that margin for a 160-pixel face box. No rotation is undone (a
tilted face stays tilted, as in FaceNet). For landmarks on the ArcFace template the crop box is
``[-11.7, 122.7]`` (side 134.4) and a point ``p`` lands at ``(p + 11.7) * 160 / 134.4 - 0.5``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tailface.data.similarity import estimate_similarity
from tailface.errors import ConfigError

DEFAULT_TEMPLATE = "arcface"

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

#: dlib's mean face shape (68-point model, coordinates in [0, 1]) reduced to tailface's five points
#: (derivation in the module docstring) and its chip padding.
DLIB_MEAN_SHAPE_5 = np.array(
    [
        [1.352951 / 6, 1.295942 / 6],   # points 36-41: sum of x, sum of y over 6 points
        [4.528568 / 6, 1.295942 / 6],   # points 42-47
        [0.490127, 0.515625],           # point 30
        [0.254149, 0.780233],           # point 48
        [0.726104, 0.780233],           # point 54
    ],
    dtype=np.float64,
)
DLIB_PADDING = 0.25
DLIB_CHIP_150 = (DLIB_PADDING + DLIB_MEAN_SHAPE_5) / (1 + 2 * DLIB_PADDING) * 150

#: facenet-box: the margin added to the estimated face box, as a fraction of its side.
FACENET_MARGIN = 0.2


@dataclass(frozen=True)
class Template:
    """One crop geometry: ``transform(landmarks 5x2, size) -> 2x3`` image -> crop matrix for a
    ``size x size`` crop; ``points``: the five canonical positions at ``reference_size`` for a
    similarity template (None for a box crop)."""

    name: str
    reference_size: int
    transform: Callable[[np.ndarray, int], np.ndarray] = field(repr=False)
    description: str = ""
    points: np.ndarray | None = field(default=None, repr=False, compare=False)

    def output_size(self, size: int | None = None) -> int:
        """``size``, or the reference size when None."""
        size = self.reference_size if size is None else int(size)
        if size < 8:
            raise ValueError(f"output_size must be at least 8, got {size}")
        return size

    def matrix(self, landmarks: np.ndarray, size: int | None = None) -> np.ndarray:
        """The 2x3 matrix that maps the image (with these five landmarks) onto the crop."""
        return self.transform(np.asarray(landmarks, dtype=np.float64), self.output_size(size))


_TEMPLATES: dict[str, Template] = {}


def register_template(template: Template) -> Template:
    if template.name in _TEMPLATES:
        raise ValueError(f"alignment template {template.name!r} registered twice")
    _TEMPLATES[template.name] = template
    return template


def template_names() -> list[str]:
    return list(_TEMPLATES)


def get_template(template: str | Template | None) -> Template:
    """The registered template of that name (None: the default, arcface); a :class:`ConfigError`
    listing the known ones otherwise."""
    if isinstance(template, Template):
        return template
    name = DEFAULT_TEMPLATE if template is None else str(template)
    if name not in _TEMPLATES:
        raise ConfigError(f"unknown alignment template {name!r}; known: {', '.join(_TEMPLATES)}")
    return _TEMPLATES[name]


def check_template_name(name: str) -> str:
    """``name`` when it is a registered template (for argparse ``type=`` and config values)."""
    return get_template(name).name


def similarity_template(name: str, points: np.ndarray, reference_size: int, description: str = "") -> Template:
    """A template that maps the five landmarks onto ``points`` (given for a ``reference_size``
    crop, scaled by ``size / reference_size`` about the origin) by the least-squares similarity."""
    points = np.array(points, dtype=np.float64)
    points.setflags(write=False)
    if points.shape != (5, 2):
        raise ValueError(f"template {name!r}: five (x, y) points are needed, got shape {points.shape}")
    return Template(name, reference_size, _Similarity(points, reference_size), description, points)


@dataclass(frozen=True)
class _Similarity:
    """``transform`` of a similarity template (a class, not a closure: aligned sets pickle to workers)."""

    points: np.ndarray
    reference_size: int

    def __call__(self, landmarks: np.ndarray, size: int) -> np.ndarray:
        return estimate_similarity(landmarks, self.points * (size / self.reference_size))


def arcface_template(output_size: int = 112) -> np.ndarray:
    """The ArcFace template scaled to an ``output_size x output_size`` crop."""
    if output_size < 8:
        raise ValueError(f"output_size must be at least 8, got {output_size}")
    return ARCFACE_TEMPLATE_112 * (output_size / 112.0)


def _box_extent(points: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre, max(width, height)) of the points' bounding box."""
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2, float((high - low).max())


_ARCFACE_CENTRE, _ARCFACE_EXTENT = _box_extent(ARCFACE_TEMPLATE_112)


def facenet_crop_box(landmarks: np.ndarray, margin: float = FACENET_MARGIN) -> tuple[np.ndarray, float]:
    """``(top-left edge (x, y), side)`` of the facenet-box crop box (module docstring)."""
    centre, extent = _box_extent(np.asarray(landmarks, dtype=np.float64))
    if not extent > 0:
        raise ValueError("landmarks are all identical: no box")
    k = extent / _ARCFACE_EXTENT
    face_centre = centre + k * (55.5 - _ARCFACE_CENTRE)
    side = 112.0 * k * (1 + margin)
    return face_centre - side / 2, side


def _facenet_box(landmarks: np.ndarray, size: int) -> np.ndarray:
    corner, side = facenet_crop_box(landmarks)
    scale = size / side
    return np.array([[scale, 0.0, -corner[0] * scale - 0.5], [0.0, scale, -corner[1] * scale - 0.5]])


def _arcface(landmarks: np.ndarray, size: int) -> np.ndarray:
    return estimate_similarity(landmarks, arcface_template(size))


register_template(Template(
    "arcface", 112, _arcface,
    "ArcFace/InsightFace 5-point template, 112x112 (similarity)", ARCFACE_TEMPLATE_112))
register_template(similarity_template(
    "dlib-chip", DLIB_CHIP_150, 150, "dlib face chip, 150x150, padding 0.25 (similarity to its mean face shape)"))
register_template(Template(
    "facenet-box", 160, _facenet_box,
    "FaceNet-style box crop, 160x160: face box estimated from the landmarks + 20% margin, no rotation"))
