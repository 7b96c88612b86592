"""LFW 6,000 pairs (``pairs.txt``): 10-fold accuracy, TAR at FAR, ROC.

``pairs.txt``: a header ``10 300`` (folds, matched pairs per fold), then per fold 300 matched lines
``name n1 n2`` and 300 mismatched lines ``name1 n1 name2 n2``; image ids ``name/name_000N.jpg``.
Score = cosine of the L2-normalised features.

Accuracy, fold f: the threshold is chosen on the other 9 folds among the candidates: the midpoints
between consecutive distinct sorted training scores, plus one below the smallest and one above the
largest; a pair is called "same" when its score is > threshold. The candidate with the best training
accuracy wins; ties go to the smallest such threshold. Mean and standard deviation (N - 1) of the 10
test-fold accuracies are reported. TAR at FAR uses all 6,000 pairs with the BLUFR threshold rule
(:mod:`tailface.eval.thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.data.ordering import rows_for
from tailface.errors import ProtocolError
from tailface.eval.thresholds import accept_rates, false_alarm_counts, needed_impostors
from tailface.eval.vectors import l2_normalize
from tailface.paths import faces_root

TAR_FARS = (1e-3, 1e-2, 1e-1)


@dataclass
class Pairs:
    left: list[str]
    right: list[str]
    same: np.ndarray   # bool
    fold: np.ndarray   # 0-based fold of each pair
    source: str


def default_pairs_path() -> Path:
    return faces_root() / "lfw" / "pairs.txt"


def _image_id(name: str, number: str, path, line_no: int) -> str:
    try:
        n = int(number)
    except ValueError:
        raise ProtocolError(f"{path}:{line_no}: image number {number!r} is not an integer") from None
    return f"{name}/{name}_{n:04d}.jpg"


def read_pairs(path=None) -> Pairs:
    """Parse ``pairs.txt``; :class:`ProtocolError` with file and line for malformed content."""
    path = Path(path) if path is not None else default_pairs_path()
    if not path.is_file():
        raise ProtocolError(f"{path}: LFW pairs file not found")
    lines = [ln.split() for ln in path.read_text().splitlines()]
    try:
        folds, per_fold = (int(v) for v in lines[0])
    except (ValueError, IndexError):
        raise ProtocolError(f"{path}:1: header must be '<folds> <pairs per fold>', got {lines[:1]}") from None
    body = [(i + 2, parts) for i, parts in enumerate(lines[1:]) if parts]
    if len(body) != folds * 2 * per_fold:
        raise ProtocolError(f"{path}: header announces {folds} x 2 x {per_fold} pairs, found {len(body)} lines")
    left, right, same, fold = [], [], [], []
    for k, (line_no, parts) in enumerate(body):
        f, within = divmod(k, 2 * per_fold)
        matched = within < per_fold
        if matched and len(parts) == 3:
            left.append(_image_id(parts[0], parts[1], path, line_no))
            right.append(_image_id(parts[0], parts[2], path, line_no))
        elif not matched and len(parts) == 4:
            left.append(_image_id(parts[0], parts[1], path, line_no))
            right.append(_image_id(parts[2], parts[3], path, line_no))
        else:
            kind = "matched 'name n1 n2'" if matched else "mismatched 'name1 n1 name2 n2'"
            raise ProtocolError(f"{path}:{line_no}: expected a {kind} line, got {' '.join(parts)!r}")
        same.append(matched)
        fold.append(f)
    return Pairs(left, right, np.array(same), np.array(fold), str(path))


def pair_scores(features, image_ids, pairs: Pairs, source: str = "features") -> np.ndarray:
    """Cosine score of every pair (features matched to pairs on image file names)."""
    x = l2_normalize(features, source)
    rows = rows_for(image_ids, pairs.left + pairs.right, source, allow_extra=True)
    n = len(pairs.left)
    return np.einsum("ij,ij->i", x[rows[:n]], x[rows[n:]])


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold (score > t means "same") with the best accuracy on these pairs; ties -> smallest."""
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    distinct = np.flatnonzero(np.r_[s[1:] != s[:-1], True])   # last index of each distinct value
    cand = np.r_[s[0] - 1.0, (s[distinct[:-1]] + s[distinct[:-1] + 1]) / 2, s[-1] + 1.0]
    # pairs called "different" below candidate c: none, then everything up to each distinct value
    below = np.r_[0, distinct + 1]
    diff_below = np.r_[0, np.cumsum(~y)][below]
    same_above = y.sum() - np.r_[0, np.cumsum(y)][below]
    correct = diff_below + same_above
    return float(cand[int(np.argmax(correct))])


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, fold: np.ndarray) -> dict:
    if len(np.unique(fold)) < 2:
        raise ProtocolError("k-fold accuracy needs at least 2 folds")
    accuracies, thresholds = [], []
    for f in np.unique(fold):
        train, test = fold != f, fold == f
        t = best_threshold(scores[train], same[train])
        thresholds.append(t)
        accuracies.append(float(np.mean((scores[test] > t) == same[test])))
    acc = np.array(accuracies)
    return {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)),
            "fold_accuracy": acc.tolist(), "fold_threshold": thresholds}


def roc_curve(scores: np.ndarray, same: np.ndarray) -> dict:
    """False/true accept rates when accepting scores >= each distinct score (descending)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    return {"far": np.r_[0.0, fp / max(1, (~y).sum())].tolist(),
            "tar": np.r_[0.0, tp / max(1, y.sum())].tolist(),
            "threshold": np.r_[np.inf, s[last]].tolist()}


def evaluate_lfw_pairs(features, image_ids, pairs: Pairs | None = None, fars=TAR_FARS,
                       source: str = "features") -> dict:
    pairs = pairs if pairs is not None else read_pairs()
    scores = pair_scores(features, image_ids, pairs, source)
    same = pairs.same
    genuine, impostor = scores[same], np.sort(scores[~same])[::-1]
    counts = false_alarm_counts(fars, len(impostor))
    tar, thr = accept_rates(impostor[: needed_impostors(counts, len(impostor))], len(impostor),
                            counts, genuine)
    return {"protocol": "lfw", "pairs": pairs.source, **ten_fold_accuracy(scores, same, pairs.fold),
            "tar_at_far": {f"{f:g}": float(v) for f, v in zip(fars, tar)},
            "tar_threshold": {f"{f:g}": float(v) for f, v in zip(fars, thr)},
            "roc": roc_curve(scores, same)}
