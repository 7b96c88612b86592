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

TAR at FAR 0.1 %, 1 %, 10 % over all pairs (``tar_at_far``, ``tar_threshold``): the shared FAR
rule of :mod:`tailface.eval.thresholds`, as for LFW pairs (only when the file has both genuine and
impostor pairs).
"""

from __future__ import annotations

import numpy as np

from tailface.errors import ProtocolError
from tailface.eval.lfw_pairs import TAR_FARS, ten_fold_accuracy
from tailface.eval.thresholds import accept_rates, false_alarm_counts, needed_impostors
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
    if issame.any() and not issame.all():
        result.update(tar_at_far(scores, issame))
    return {"protocol": "verification-bin", "pairs": int(len(issame)), "folds": folds, **result}


def tar_at_far(scores: np.ndarray, issame: np.ndarray, fars=TAR_FARS) -> dict:
    """``{"tar_at_far": {far: TAR}, "tar_threshold": {far: threshold}}`` over all pairs (shared rule)."""
    genuine, impostor = scores[issame], np.sort(scores[~issame])[::-1]
    counts = false_alarm_counts(fars, len(impostor))
    tar, thr = accept_rates(impostor[: needed_impostors(counts, len(impostor))], len(impostor), counts, genuine)
    return {"tar_at_far": {f"{f:g}": float(v) for f, v in zip(fars, tar)},
            "tar_threshold": {f"{f:g}": float(v) for f, v in zip(fars, thr)}}
