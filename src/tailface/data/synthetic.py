"""Built-in synthetic face-like identities with a long-tailed number of images per identity.

Every identity has its own *geometry* (face oval width/height and jaw shape, eye spacing, size and
height, brow gap/thickness/tilt, nose length/width, mouth height/width/lip thickness, hairline,
hair volume and length, fringe curve, beard) and *appearance* (skin tone, hair colour, iris
colour, lip tint), drawn deterministically from ``(seed, stream, identity index)``. Each image
varies *pose* (in-plane rotation, yaw-like horizontal squash with inner features shifted sideways,
scale, translation), *lighting* (directional gradient, brightness, contrast, white balance),
*expression* (smile, open mouth, eye openness), background and pixel noise. Rendering is vectorised
numpy over a coordinate grid (soft-edged ellipses/curves composited back to front), no per-pixel
Python loops.

Class sizes follow a truncated power law (:func:`class_size_law`): the sizes are the
``(i + 0.5) / n`` quantiles of a continuous density ``p(x) ~ x**-exponent`` on
``[min_images, max_images + 1)``, floored to integers and sorted from largest to smallest, so
identity ``syn00000`` has the most images. (Untruncated, a power law over class sizes is a
Zipf law over identity rank with exponent ``1 / (exponent - 1)``.) With the defaults (450 identities,
``max_images=50``, ``exponent=1.2``) and the paper's groups (A >= 21, B 10-20, C 4-9, D 1-3)::

    group  identities  images  share of images
    A              73    2401            54.8%
    B              72    1022            23.3%
    C             105     628            14.3%
    D             200     330             7.5%
    all           450    4381           100.0%   tail (C+D): 21.9%

(paper: 19% of images in the tail; CelebA as used here: 61%). :func:`composition_table` prints
this table for any setting (``python -m tailface.data.synthetic``).

Open-set evaluation identities (:func:`synthetic_eval_faceset`) come from a different seed
stream, so they are distinct people from the training identities of the same seed.

Class names are ``syn00042`` (training) / ``synev00042`` (evaluation); image ids are
``<class name>/0003.png``.
"""

from __future__ import annotations

import numpy as np

from tailface.data.faceset import InMemoryFaceSet
from tailface.data.groups import GROUPS, GroupThresholds, group_of_counts
from tailface.errors import ConfigError

TRAIN_STREAM = 0
EVAL_STREAM = 1

_SKIN_LIGHT = np.array([0.96, 0.82, 0.72])
_SKIN_DARK = np.array([0.32, 0.20, 0.13])
_HAIR_PALETTE = np.array([
    [0.07, 0.05, 0.04],  # black
    [0.30, 0.17, 0.08],  # brown
    [0.55, 0.36, 0.18],  # light brown
    [0.88, 0.74, 0.45],  # blond
    [0.62, 0.24, 0.09],  # red
    [0.66, 0.66, 0.66],  # grey
])
_IRIS_PALETTE = np.array([
    [0.25, 0.14, 0.06],  # brown
    [0.20, 0.40, 0.70],  # blue
    [0.25, 0.50, 0.30],  # green
    [0.45, 0.48, 0.50],  # grey
])


# --------------------------------------------------------------------------------------------
# class sizes


def class_size_law(num_identities: int, max_images: int = 50, exponent: float = 1.2,
                   min_images: int = 1) -> np.ndarray:
    """Images per identity, largest first: quantiles of ``p(x) ~ x**-exponent`` on
    ``[min_images, max_images + 1)``, floored (see the module docstring)."""
    _check(num_identities >= 1, f"num_identities must be >= 1, got {num_identities}")
    _check(1 <= min_images <= max_images, f"need 1 <= min_images <= max_images, got {min_images}, {max_images}")
    _check(exponent > 0, f"exponent must be > 0, got {exponent}")
    q = (np.arange(num_identities) + 0.5) / num_identities
    lo, hi = float(min_images), float(max_images + 1)
    if abs(exponent - 1.0) < 1e-9:
        x = lo * (hi / lo) ** q
    else:
        a = 1.0 - exponent
        x = (lo ** a + q * (hi ** a - lo ** a)) ** (1.0 / a)
    counts = np.clip(np.floor(x + 1e-9).astype(np.int64), min_images, max_images)
    return np.sort(counts)[::-1].copy()


def composition_table(counts: np.ndarray, thresholds: GroupThresholds = GroupThresholds()) -> str:
    """Identities and images per long-tail group, as a printable table."""
    counts = np.asarray(counts)
    groups = group_of_counts(counts, thresholds)
    total = int(counts.sum())
    lines = ["group  identities  images  share of images"]
    for g in GROUPS:
        sel = groups == g
        n = int(counts[sel].sum())
        lines.append(f"{g:<5}  {int(sel.sum()):>10}  {n:>6}  {100.0 * n / max(total, 1):>14.1f}%")
    tail = int(counts[np.isin(groups, ("C", "D"))].sum())
    lines.append(f"{'all':<5}  {len(counts):>10}  {total:>6}  {100.0:>14.1f}%   "
                 f"tail (C+D): {100.0 * tail / max(total, 1):.1f}%")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# public constructors


def synthetic_faceset(num_identities: int = 450, image_size: int = 32, seed: int = 0,
                      max_images: int = 50, exponent: float = 1.2, min_images: int = 1,
                      variation: float = 1.0) -> InMemoryFaceSet:
    """Long-tailed training set of synthetic identities (see the module docstring).

    ``variation`` scales every nuisance (pose, lighting, expression, noise); 0 renders each
    identity identically in every image.
    """
    counts = class_size_law(num_identities, max_images, exponent, min_images)
    return _build(counts, image_size, seed, TRAIN_STREAM, "syn", variation,
                  source=f"<synthetic seed={seed} identities={num_identities}>")


def synthetic_eval_faceset(num_identities: int = 100, images_per_identity: int = 10,
                           image_size: int = 32, seed: int = 0, variation: float = 1.0) -> InMemoryFaceSet:
    """Identities disjoint from :func:`synthetic_faceset`'s (another seed stream), each with
    ``images_per_identity`` images, for open-set evaluation."""
    _check(num_identities >= 1, f"num_identities must be >= 1, got {num_identities}")
    _check(images_per_identity >= 1, f"images_per_identity must be >= 1, got {images_per_identity}")
    counts = np.full(num_identities, images_per_identity, dtype=np.int64)
    return _build(counts, image_size, seed, EVAL_STREAM, "synev", variation,
                  source=f"<synthetic-eval seed={seed} identities={num_identities}>")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"synthetic data: {message}")


def _build(counts, image_size, seed, stream, prefix, variation, source) -> InMemoryFaceSet:
    _check(int(image_size) == image_size and image_size >= 8, f"image_size must be an int >= 8, got {image_size}")
    params = face_parameters(counts, seed, stream, variation)
    labels = np.repeat(np.arange(len(counts)), counts)
    images = render(params, int(image_size))
    class_names = [f"{prefix}{k:05d}" for k in range(len(counts))]
    image_ids = [f"{class_names[k]}/{j:04d}.png" for k, n in enumerate(counts) for j in range(n)]
    return InMemoryFaceSet(images, labels, class_names, image_ids, source=source)


# --------------------------------------------------------------------------------------------
# parameters


def face_parameters(counts, seed: int = 0, stream: int = EVAL_STREAM, variation: float = 1.0) -> dict[str, np.ndarray]:
    """Per-image rendering parameters of ``len(counts)`` identities with ``counts[k]`` images each
    (identity ``k`` drawn from ``(seed, stream, k)``, its images' pose, lighting and expression from
    ``(seed, stream, k, 1)``), images ordered by identity: what :func:`render` draws and
    :func:`face_landmarks` locates. Callers may change the pose entries (``scale``, ``tx``, ``ty``,
    ``rot``) before rendering, e.g. to draw a smaller face with background around it."""
    counts = np.asarray(counts, dtype=np.int64)
    _check(variation >= 0, f"variation must be >= 0, got {variation}")
    idents = [_identity_params(np.random.default_rng([seed, stream, k])) for k in range(len(counts))]
    poses = [_image_params(np.random.default_rng([seed, stream, k, 1]), int(n), variation)
             for k, n in enumerate(counts)]
    ident = {key: np.stack([p[key] for p in idents]) for key in idents[0]}
    image = {key: np.concatenate([p[key] for p in poses]) for key in poses[0]}
    labels = np.repeat(np.arange(len(counts)), counts)
    return {**{key: value[labels] for key, value in ident.items()}, **image}


def face_landmarks(params: dict[str, np.ndarray], image_size: int) -> np.ndarray:
    """``N x 5 x 2`` pixel coordinates ``(x, y)`` (pixel centres at integers, the convention of
    :mod:`tailface.data.align`) of the five points of each face :func:`render` draws from
    ``params``: left and right eye (image left/right; the iris centres), the nose tip (the
    nostrils' centre) and the left and right mouth corners.

    The renderer places features in face coordinates ``(u, v)``; an image point ``(x, y)`` in
    ``[-1, 1]`` maps to them by ``u = (cos r dx + sin r dy) / (s (1 - |yaw| / 4))``,
    ``v = (-sin r dx + cos r dy) / s`` with ``dx = x - tx``, ``dy = y - ty - 0.04``; this is that
    map inverted, then ``pixel = (x + 1) size / 2 - 1/2``."""
    shift = 0.22 * params["yaw"]
    eye_y = params["eye_y"]
    smile = params["smile"]
    half_mouth = params["mouth_w"] * (1.0 + 0.15 * smile)
    mouth_y = params["mouth_y"] - 0.07 * smile  # the lip centre line at the corners (|mu| = 1)
    iris = -params["eye_dx"] + 1.3 * shift, params["eye_dx"] + 1.3 * shift
    u = np.stack([iris[0], iris[1], 1.3 * shift, shift - half_mouth, shift + half_mouth], axis=1)
    v = np.stack([eye_y, eye_y, eye_y + params["nose_len"], mouth_y, mouth_y], axis=1)
    u = u * (1.0 - 0.25 * np.abs(params["yaw"]))[:, None]
    scale, rot = params["scale"][:, None], params["rot"][:, None]
    x = scale * (np.cos(rot) * u - np.sin(rot) * v) + params["tx"][:, None]
    y = scale * (np.sin(rot) * u + np.cos(rot) * v) + params["ty"][:, None] + 0.04
    return np.stack([(x + 1.0) * image_size / 2 - 0.5, (y + 1.0) * image_size / 2 - 0.5], axis=2)


def _identity_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    u = rng.uniform
    skin_t = u(0, 1)
    skin = (1 - skin_t) * _SKIN_LIGHT + skin_t * _SKIN_DARK + rng.normal(0, 0.025, 3)
    hair = _HAIR_PALETTE[rng.integers(len(_HAIR_PALETTE))] * u(0.8, 1.2) + rng.normal(0, 0.03, 3)
    iris = _IRIS_PALETTE[rng.integers(len(_IRIS_PALETTE))] + rng.normal(0, 0.04, 3)
    bald = u() < 0.08
    return {
        "face_w": np.float64(u(0.40, 0.56)), "face_h": np.float64(u(0.56, 0.72)),
        "jaw": np.float64(u(1.5, 3.0)),
        "eye_dx": np.float64(u(0.15, 0.25)), "eye_y": np.float64(u(-0.16, -0.02)),
        "eye_r": np.float64(u(0.055, 0.095)), "eye_ratio": np.float64(u(0.40, 0.70)),
        "brow_gap": np.float64(u(0.07, 0.15)), "brow_t": np.float64(u(0.015, 0.045)),
        "brow_tilt": np.float64(u(-0.35, 0.35)),
        "nose_len": np.float64(u(0.12, 0.24)), "nose_w": np.float64(u(0.035, 0.085)),
        "mouth_y": np.float64(u(0.26, 0.42)), "mouth_w": np.float64(u(0.11, 0.23)),
        "lip_t": np.float64(u(0.018, 0.045)),
        "hairline": np.float64(-0.95 if bald else u(-0.62, -0.28)),
        "fringe": np.float64(u(-0.3, 0.6)),
        "hair_vol": np.float64(0.0 if bald else u(0.0, 0.22)),
        "hair_len": np.float64(-0.6 if bald else u(-0.3, 0.9)),
        "beard": np.float64(u(0.5, 0.9) if u() < 0.15 else 0.0),
        "skin": np.clip(skin, 0, 1), "hair": np.clip(hair, 0, 1), "iris": np.clip(iris, 0, 1),
        "lip": np.clip(skin * np.array([0.85, 0.55, 0.55]) + rng.normal(0, 0.03, 3), 0, 1),
    }


def _image_params(rng: np.random.Generator, n: int, v: float) -> dict[str, np.ndarray]:
    u = rng.uniform
    return {
        "rot": v * np.clip(rng.normal(0, 0.14, n), -0.35, 0.35),
        "yaw": v * u(-0.35, 0.35, n),
        "scale": 1.12 * (1.0 + v * u(-0.10, 0.10, n)),
        "tx": v * np.clip(rng.normal(0, 0.05, n), -0.12, 0.12),
        "ty": v * np.clip(rng.normal(0, 0.05, n), -0.12, 0.12),
        "smile": v * u(-0.2, 1.0, n),
        "mouth_open": v * u(0, 1, n) ** 2,
        "eye_open": 1.0 + v * u(-0.5, 0.15, n),
        "light_dir": u(0, 2 * np.pi, n),  # strength below
        "light": v * u(0.0, 0.35, n),
        "brightness": 1.0 + v * u(-0.2, 0.2, n),
        "contrast": 1.0 + v * u(-0.2, 0.2, n),
        "white": 1.0 + v * rng.normal(0, 0.04, (n, 3)),
        "noise": v * u(0.005, 0.03, n),
        "noise_seed": rng.integers(0, 2**31, n),
        "background": 0.5 + v * np.clip(u(-0.35, 0.35, (n, 1)) + rng.normal(0, 0.12, (n, 3)), -0.5, 0.5),
        "bg_grad": v * u(-0.25, 0.25, (n, 2)),
    }


# --------------------------------------------------------------------------------------------
# rendering


def render(params: dict[str, np.ndarray], image_size: int, chunk: int = 256) -> np.ndarray:
    """Render per-image parameter arrays (identity parameters already broadcast to images) as an
    ``NxSxSx3`` uint8 array."""
    n = len(params["rot"])
    out = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, n, chunk):
        part = {k: v[start:start + chunk] for k, v in params.items()}
        out[start:start + chunk] = _render_chunk(part, image_size)
    return out


def _col(x):
    """Per-image scalar (B,) -> (B, 1, 1) for broadcasting over the pixel grid."""
    return np.asarray(x, dtype=np.float32)[:, None, None]


def _rgb(x):
    """Per-image colour (B, 3) -> (B, 1, 1, 3)."""
    return np.asarray(x, dtype=np.float32)[:, None, None, :]


def _ramp(signed, pix):
    """Soft step: 0 outside, 1 inside, linear over one pixel (``signed`` > 0 inside)."""
    return np.clip(signed / pix + 0.5, 0.0, 1.0)


def _ellipse(u, v, cu, cv, ru, rv, pix, power=2.0):
    """Soft mask of the super-ellipse ``|du/ru|^p + |dv/rv|^p <= 1``."""
    du, dv = np.abs(u - cu) / ru, np.abs(v - cv) / rv
    d = (du ** power + dv ** power) ** (1.0 / power)
    return _ramp((1.0 - d) * np.minimum(ru, rv), pix)


def _paint(img, mask, colour):
    mask = mask[..., None]
    img *= 1.0 - mask
    img += mask * colour


def _render_chunk(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    b = len(p["rot"])
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(axis, axis, indexing="ij")  # image coordinates in [-1, 1], y downwards
    x, y = x[None], y[None]

    # background: per-image colour with a linear gradient
    g = p["bg_grad"].astype(np.float32)
    img = np.broadcast_to(_rgb(p["background"]), (b, size, size, 3)).copy()
    img *= (1.0 + _col(g[:, 0]) * x + _col(g[:, 1]) * y)[..., None]

    # face frame: undo translation, rotation and scale; yaw squashes the head horizontally and
    # moves the inner features sideways
    cos, sin = _col(np.cos(p["rot"])), _col(np.sin(p["rot"]))
    sc = _col(p["scale"])
    dx, dy = x - _col(p["tx"]), y - _col(p["ty"]) - 0.04
    u = (cos * dx + sin * dy) / sc
    v = (-sin * dx + cos * dy) / sc
    yaw = _col(p["yaw"])
    u = u / (1.0 - 0.25 * np.abs(yaw))
    pix = 2.0 / size / sc  # one pixel in face units
    shift = 0.22 * yaw

    skin, hair = _rgb(p["skin"]), _rgb(p["hair"])
    face_w, face_h = _col(p["face_w"]), _col(p["face_h"])

    # hair behind the head: a larger oval, cut off below the hair length
    vol = _col(p["hair_vol"])
    back = _ellipse(u, v, 0.0, -0.08, face_w + 0.04 + vol, face_h * 0.92 + vol, pix)
    back *= _ramp(_col(p["hair_len"]) - v, pix) * (vol > 0)
    _paint(img, back, hair)

    # neck, then the face oval (elliptic top, super-elliptic jaw)
    neck = _ramp(face_w * 0.45 - np.abs(u), pix) * _ramp(v - 0.2, pix)
    _paint(img, neck, skin * 0.82)
    jaw = np.where(v > 0, _col(p["jaw"]), 2.0)
    face = _ellipse(u, v, 0.0, 0.0, face_w, face_h, pix, power=jaw)
    _paint(img, face, skin)

    # fringe: hair inside the face above a curved hairline
    hairline = _col(p["hairline"]) + _col(p["fringe"]) * (u / face_w) ** 2 * 0.25
    _paint(img, face * _ramp(hairline - v, pix), hair)

    # beard over the lower face
    beard = face * _ramp(v - (_col(p["mouth_y"]) - 0.1), pix) * _col(p["beard"])
    _paint(img, beard, hair * 0.9)

    # brows and eyes, mirrored
    eye_dx, eye_y, eye_r = _col(p["eye_dx"]), _col(p["eye_y"]), _col(p["eye_r"])
    eye_rv = eye_r * _col(p["eye_ratio"]) * np.maximum(_col(p["eye_open"]), 0.05)
    for side in (-1.0, 1.0):
        cu = side * eye_dx + shift
        tilt = side * _col(p["brow_tilt"])
        bu, bv = u - cu, v - (eye_y - _col(p["brow_gap"]))
        bu, bv = bu * np.cos(tilt) + bv * np.sin(tilt), -bu * np.sin(tilt) + bv * np.cos(tilt)
        _paint(img, _ellipse(bu, bv, 0.0, 0.0, eye_r * 1.3, _col(p["brow_t"]), pix), hair * 0.8)
        white = _ellipse(u, v, cu, eye_y, eye_r, eye_rv, pix)
        _paint(img, white, np.array([0.93, 0.93, 0.9], dtype=np.float32))
        iris = white * _ellipse(u, v, cu + 0.3 * shift, eye_y, eye_r * 0.5, eye_r * 0.5, pix)
        _paint(img, iris, _rgb(p["iris"]))
        _paint(img, iris * _ellipse(u, v, cu + 0.3 * shift, eye_y, eye_r * 0.22, eye_r * 0.22, pix),
               np.array([0.03, 0.03, 0.03], dtype=np.float32))

    # nose: a shaded ridge and the nostrils
    nose_y = eye_y + _col(p["nose_len"])
    nose_w = _col(p["nose_w"])
    ridge = _ellipse(u, v, shift * 1.2, (eye_y + nose_y) / 2, nose_w * 0.45, (nose_y - eye_y) / 2, pix)
    _paint(img, ridge * 0.35, skin * 0.7)
    _paint(img, _ellipse(u, v, shift * 1.3, nose_y, nose_w, nose_w * 0.55, pix) * 0.8, skin * 0.55)

    # mouth: lips around a centre line that bends up at the corners with the smile; the open
    # mouth is a dark gap that is widest in the middle
    mw = _col(p["mouth_w"]) * (1.0 + 0.15 * _col(p["smile"]))
    mu = (u - shift) / mw
    inside = np.clip(1.0 - mu ** 2, 0.0, 1.0)
    centre = _col(p["mouth_y"]) - 0.07 * _col(p["smile"]) * mu ** 2
    gap = 0.06 * _col(p["mouth_open"]) * np.sqrt(inside)
    half = gap + _col(p["lip_t"]) * np.sqrt(inside)
    width_mask = _ramp(mw - np.abs(u - shift), pix)
    _paint(img, width_mask * _ramp(half - np.abs(v - centre), pix), _rgb(p["lip"]))
    _paint(img, width_mask * _ramp(gap - np.abs(v - centre), pix), np.array([0.15, 0.05, 0.05], dtype=np.float32))

    # lighting, contrast, brightness, white balance, noise
    theta = p["light_dir"]
    shade = 1.0 + _col(p["light"]) * (_col(np.cos(theta)) * x + _col(np.sin(theta)) * y)
    img *= shade[..., None]
    mean = img.mean(axis=(1, 2, 3), keepdims=True)
    img = (img - mean) * _col(p["contrast"])[..., None] + mean
    img *= _col(p["brightness"])[..., None] * _rgb(p["white"])
    noise = np.stack([np.random.default_rng(int(s)).standard_normal((size, size, 3), dtype=np.float32)
                      for s in p["noise_seed"]])
    img += noise * _col(p["noise"])[..., None]
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


if __name__ == "__main__":  # pragma: no cover - prints the default composition
    print(composition_table(class_size_law(450)))
