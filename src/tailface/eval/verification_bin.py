"""10-fold verification accuracy of an InsightFace verification ``.bin`` (lfw.bin, cfp_fp.bin,
agedb_30.bin; format in :mod:`tailface.data.verification_bin`).

Features of the 2N images (flip fusion, as for every tailface protocol) are L2-normalised; the
score of pair ``k`` is the cosine of images ``2k`` and ``2k + 1``. Folds are InsightFace's: 10
consecutive blocks of the pair list (scikit-learn ``KFold(10, shuffle=False)``: the first
``N mod 10`` folds one pair longer). Per fold the threshold is chosen on the other 9 folds with
:func:`tailface.eval.lfw_pairs.best_threshold` (midpoints of sorted training scores, ties to the
smallest; "same" when score > threshold) and the fold's test accuracy is recorded; mean and
standard deviation (N - 1) are reported, as for LFW pairs.

InsightFace thresholds the squared distance ``d = 2 - 2 cos`` on the grid 0, 0.01, ..., 3.99;
the midpoint rule reaches the best training accuracy over all thresholds, so a fold's threshold
can differ slightly and its test accuracy by a pair or two; InsightFace also reports the standard
deviation with ``ddof=0`` (``accuracy_std_ddof0`` here).
"""

from __future__ import annotations

import numpy as np

from tailface.errors import ProtocolError
from tailface.eval.lfw_pairs import ten_fold_accuracy
from tailface.eval.vectors import l2_normalize


def consecutive_folds(n: int, k: int = 10) -> np.ndarray:
    """Fold of each of ``n`` pairs: ``k`` consecutive blocks, the first ``n mod k`` one longer."""
    if n < k:
        raise ProtocolError(f"{n} pairs are fewer than {k} folds")
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    return np.repeat(np.arange(k), sizes)


def bin_scores(features: np.ndarray, source: str = "features") -> np.ndarray:
    """Cosine of rows ``2k`` and ``2k + 1`` for every pair ``k``."""
    x = l2_normalize(np.asarray(features), source)
    if len(x) % 2:
        raise ProtocolError(f"{source}: {len(x)} feature rows, not 2 per pair")
    return np.einsum("ij,ij->i", x[0::2], x[1::2])


def evaluate_bin(features: np.ndarray, issame: np.ndarray, source: str = "features", folds: int = 10) -> dict:
    issame = np.asarray(issame, dtype=bool)
    if len(features) != 2 * len(issame):
        raise ProtocolError(f"{source}: {len(features)} feature rows for {len(issame)} pairs")
    scores = bin_scores(features, source)
    result = ten_fold_accuracy(scores, issame, consecutive_folds(len(issame), folds))
    result["accuracy_std_ddof0"] = float(np.std(result["fold_accuracy"]))
    return {"protocol": "verification-bin", "pairs": int(len(issame)), "folds": folds, **result}
