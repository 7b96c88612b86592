"""IJB 1:1 verification: template pairs -> TAR at FAR 1e-6 .. 1e-1, read two ways, and the ROC.

* **exact** (tailface, as its BLUFR): with ``n`` impostor pairs, ``k = round(FAR n)`` (halves away
  from zero), threshold = the ``k``-th largest impostor score, a pair is accepted when its score is
  ``>=`` the threshold (ties at the threshold accepted); ``k = 0``: accepted when strictly above
  every impostor (:mod:`tailface.eval.thresholds`, shared with BLUFR, the synthetic protocol and LFW).
* **nearest ROC point** (the anchors: insightface ``eval_ijbc.py`` / ``ijb_evals.py``, AdaFace): the
  TAR of the scikit-learn ROC point whose FPR is nearest the FAR (:mod:`tailface.eval.roc_points`);
  reported with that point's own FPR and threshold. The figures the field publishes use this reading.

Scores: cosine of the L2-normalised template features (:mod:`tailface.eval.pair_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tailface.errors import ProtocolError
from tailface.eval.pair_scores import pair_scores
from tailface.eval.roc_points import RocPoints, nearest_point_rates, roc_points
from tailface.eval.thresholds import accept_rates, false_alarm_counts, largest_descending, needed_impostors

#: The FAR points of the IJB tables.
IJB_FARS = np.array([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
#: FAR grid of the exact curve kept in the metrics (10 points per decade, 1e-6 .. 1e-1).
CURVE_FARS = 10.0 ** (np.arange(-60, -9) / 10.0)


@dataclass
class VerificationFigures:
    scores: np.ndarray          # float64, one per pair, in the pair list's order
    fars: np.ndarray
    exact: dict                 # tar, threshold, false_alarms per FAR
    nearest: dict               # tar, fpr, threshold per FAR (the anchors' reading)
    roc: RocPoints
    curve: dict                 # exact TAR on CURVE_FARS

    def to_dict(self) -> dict:
        return {"far": self.fars.tolist(), "tar_exact": self.exact["tar"],
                "threshold_exact": self.exact["threshold"], "false_alarms": self.exact["false_alarms"],
                "tar_nearest": self.nearest["tar"], "fpr_nearest": self.nearest["fpr"],
                "threshold_nearest": self.nearest["threshold"],
                "n_genuine": self.roc.n_genuine, "n_impostor": self.roc.n_impostor,
                "roc_points": len(self.roc.fpr), "curve": self.curve}


def exact_rates(genuine: np.ndarray, impostor: np.ndarray, fars) -> dict:
    """TAR at each FAR with the shared threshold rule (:mod:`tailface.eval.thresholds`)."""
    fars = np.asarray(fars, np.float64)
    counts = false_alarm_counts(fars, len(impostor))
    top = largest_descending(impostor, needed_impostors(counts, len(impostor)))
    rates, thresholds = accept_rates(top, len(impostor), counts, genuine)
    return {"tar": rates.tolist(), "threshold": [float(t) for t in thresholds], "false_alarms": counts.tolist()}


def verify_pairs(template_feats: np.ndarray, first: np.ndarray, second: np.ndarray, labels: np.ndarray,
                 fars=IJB_FARS, source: str = "pairs", progress: bool = False) -> VerificationFigures:
    """Figures of the pairs ``(first[k], second[k])`` (rows of ``template_feats``), label 1 genuine."""
    labels = np.asarray(labels)
    scores = pair_scores(template_feats, first, second, progress=progress)
    same = labels == 1
    genuine, impostor = scores[same], scores[~same]
    if not len(genuine) or not len(impostor):
        raise ProtocolError(f"{source}: {len(genuine)} genuine and {len(impostor)} impostor pairs; "
                            "verification needs both")
    fars = np.asarray(fars, np.float64)
    roc = roc_points(genuine, impostor)
    exact_curve = exact_rates(genuine, impostor, CURVE_FARS)
    return VerificationFigures(scores, fars, exact_rates(genuine, impostor, fars), nearest_point_rates(roc, fars),
                               roc, {"far": CURVE_FARS.tolist(), "tar_exact": exact_curve["tar"]})
