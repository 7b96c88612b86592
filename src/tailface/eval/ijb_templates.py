"""IJB template features from per-image features: the anchors' pooling, with its options named.

For image ``i`` with feature ``f_i`` (flip fusion: the feature of the aligned crop plus that of its
mirror, as tailface extracts them) and detector score ``s_i``::

    x_i = f_i                    norm "keep" (default)      |  f_i / ||f_i||   norm "unit"
    x_i = s_i x_i                detector weighting on (default)  |  x_i   off
    m_(t,m) = mean of x_i over the images of media m in template t   (frames of one video averaged)
    T_t = sum over the media m of t of m_(t,m)                       (media summed)
    T_t = T_t / ||T_t||                                              (template L2-normalised)

all in float64, sums in the file's order (frames) and in ascending media id (media), as the anchors
add them. The defaults are insightface ``arcface_torch/eval_ijbc.py``'s (``use_norm_score=True``:
norm kept, ``use_detector_score=True``, ``use_flip_test=True`` with the mirrored features added);
``recognition/_evaluation_/ijb/ijb_evals.py`` computes the same by default, but its flag
``use_norm_score=True`` means the opposite (features normalised), so the two files' mode names
(``N1D1F1``) disagree: here the options say what they do. AdaFace (``validate_IJB_BC.py``) keeps the
norm and applies no detector score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailface.errors import ConfigError, ProtocolError

NORMS = ("keep", "unit")


@dataclass(frozen=True)
class PoolingMode:
    norm: str = "keep"        # "keep": image features as extracted; "unit": L2-normalised first
    detector: bool = True     # multiply each image feature by its detector score

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ConfigError(f"IJB feature norm must be one of {', '.join(NORMS)}, got {self.norm!r}")

    @property
    def is_default(self) -> bool:
        return self == PoolingMode()

    def describe(self) -> str:
        norm = "kept" if self.norm == "keep" else "L2-normalised"
        weight = "weighted by the detector score" if self.detector else "no detector-score weighting"
        text = (f"image features with flip fusion (f(x) + f(mirror x)), norm {norm}, {weight}; frames of a media "
                "averaged, media summed, template L2-normalised")
        if self.is_default:
            text += " (arcface_torch eval_ijbc.py's default mode)"
        return text


def image_inputs(features: np.ndarray, scores: np.ndarray, mode: PoolingMode, rows=None) -> np.ndarray:
    """float64 ``x_i`` of the images ``rows`` (all when None)."""
    x = np.asarray(features if rows is None else features[rows], dtype=np.float64)
    if mode.norm == "unit":
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        x = x / norms[:, None]
    if mode.detector:
        s = np.asarray(scores if rows is None else scores[rows], dtype=np.float64)
        x = x * s[:, None]
    return x


def _bounds(keys: np.ndarray) -> np.ndarray:
    """Start of each run of equal rows of ``keys`` (sorted), plus the end."""
    change = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1 if keys.ndim == 2 else \
        np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return np.r_[0, change, len(keys)]


def template_features(features: np.ndarray, scores: np.ndarray, templates: np.ndarray, medias: np.ndarray,
                      mode: PoolingMode = PoolingMode(), rows_per_block: int = 65536,
                      source: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """``(template ids ascending, float64 L2-normalised template features)`` of every template of
    ``templates`` (one id per image; see the module docstring). Memory: one block of about
    ``rows_per_block`` image rows in float64 at a time (whole templates per block)."""
    templates, medias = np.asarray(templates, np.int64), np.asarray(medias, np.int64)
    order = np.lexsort((medias, templates))  # by template, then media; stable: file order within a media
    t_sorted = templates[order]
    t_bounds = _bounds(t_sorted)
    ids = t_sorted[t_bounds[:-1]]
    out = np.zeros((len(ids), features.shape[1]), np.float64)
    t0 = 0
    while t0 < len(ids):  # blocks of whole templates
        t1 = int(np.searchsorted(t_bounds, t_bounds[t0] + rows_per_block, side="right")) - 1
        t1 = max(t1, t0 + 1)
        r0, r1 = t_bounds[t0], t_bounds[t1]
        rows = order[r0:r1]
        x = image_inputs(features, scores, mode, rows)
        keys = np.stack([t_sorted[r0:r1], medias[rows]], axis=1)
        m_bounds = _bounds(keys)
        media_sums = np.add.reduceat(x, m_bounds[:-1], axis=0)
        media_means = media_sums / np.diff(m_bounds)[:, None]
        media_template = keys[m_bounds[:-1], 0]
        tm_bounds = _bounds(media_template)
        out[t0:t1] = np.add.reduceat(media_means, tm_bounds[:-1], axis=0)
        t0 = t1
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    zero = np.flatnonzero(~(norms > 0) | ~np.isfinite(norms))
    if len(zero):
        raise ProtocolError(f"{source}: {len(zero)} templates have a zero or non-finite pooled feature (e.g. "
                            f"template {ids[zero[0]]}; detector scores of 0?); they cannot be normalised")
    return ids, out / norms[:, None]


def index_of(ids: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    """Positions of ``wanted`` template ids in the ascending ``ids``; :class:`ProtocolError` naming
    ``what`` for ids that have no image."""
    wanted = np.asarray(wanted, np.int64)
    pos = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    missing = ids[pos] != wanted
    if missing.any():
        bad = np.unique(wanted[missing])
        raise ProtocolError(f"{what}: {len(bad)} template ids have no image in the release's face list "
                            f"(e.g. {', '.join(map(str, bad[:3].tolist()))})")
    return pos
