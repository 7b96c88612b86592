"""The ROC curve as scikit-learn's ``roc_curve`` gives it, and the anchors' reading of TAR at a FAR.

Points (``roc_curve(labels, scores)`` with its default ``drop_intermediate=True``): for each distinct
score ``t`` in descending order, ``tps(t) = #{genuine >= t}`` and ``fps(t) = #{impostor >= t}``; a
point is dropped when both its ``fps`` and its ``tps`` have a zero second difference (it lies on a
straight run between its neighbours), the first and last are kept, and ``(0, 0)`` (threshold
``+inf``) is put in front. ``fpr = fps / n_impostor``, ``tpr = tps / n_genuine``.

The *nearest-point reading* (insightface ``arcface_torch/eval_ijbc.py`` and
``recognition/_evaluation_/ijb/ijb_evals.py``, AdaFace's IJB scripts): TAR at FAR ``f`` is the
``tpr`` of the point whose ``fpr`` is nearest to ``f`` (``|fpr - f|`` smallest); among equally near
points the last one (they search the flipped arrays and take the first minimum: the highest
``tpr`` among points of one ``fpr``). No interpolation, and the point's own ``fpr`` may be far from
``f`` when the curve has few points there (TAR at FAR 1e-6 with a million impostors reads a point
with 0 or 1, 2 ... false accepts, whichever is nearest). Which points exist depends on the dropping
rule, so the reading needs exactly these points.

Computed from the sorted genuine and impostor scores (no ``N x 2`` label/score sort): memory of a
few float64 and int64 arrays of the number of distinct scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailface.errors import ProtocolError


@dataclass
class RocPoints:
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray    # +inf first, then descending scores
    n_genuine: int
    n_impostor: int


def roc_points(genuine, impostor) -> RocPoints:
    """scikit-learn's ``roc_curve`` points (``drop_intermediate=True``); see the module docstring."""
    gen = np.sort(np.asarray(genuine, np.float64))
    imp = np.sort(np.asarray(impostor, np.float64))
    if not len(gen) or not len(imp):
        raise ProtocolError(f"{len(gen)} genuine and {len(imp)} impostor scores; an ROC needs both")
    both = np.concatenate([gen, imp])
    both.sort(kind="stable")  # two sorted runs: merged in linear time
    distinct = both[np.r_[True, both[1:] != both[:-1]]][::-1]
    del both
    tps = len(gen) - np.searchsorted(gen, distinct, side="left")
    fps = len(imp) - np.searchsorted(imp, distinct, side="left")
    if len(fps) > 2:
        keep = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        fps, tps, distinct = fps[keep], tps[keep], distinct[keep]
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    return RocPoints(fps / fps[-1], tps / tps[-1], np.r_[np.inf, distinct], len(gen), len(imp))


def nearest_point(roc: RocPoints, far: float) -> int:
    """Index of the point the anchors read at ``far`` (nearest ``fpr``; the last of equally near)."""
    distance = np.abs(roc.fpr - far)
    return len(distance) - 1 - int(np.argmin(distance[::-1]))


def nearest_point_rates(roc: RocPoints, fars) -> dict:
    """``{"tar", "fpr", "threshold"}`` lists: the nearest point's values at each FAR."""
    index = [nearest_point(roc, float(f)) for f in np.asarray(fars, np.float64)]
    return {"tar": [float(roc.tpr[i]) for i in index], "fpr": [float(roc.fpr[i]) for i in index],
            "threshold": [float(roc.thresholds[i]) for i in index]}
