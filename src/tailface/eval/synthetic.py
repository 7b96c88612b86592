"""Protocol "synthetic": held-out synthetic identities (disjoint from training).

Verification over all pairs (VR at FAR 0.1 % and 1 %) and open-set identification: the first
image of each of the first half of the identities forms the gallery; their other images are
genuine probes and every image of the other identities an impostor probe (DIR at FAR 1 %, rank 1).
"""

from __future__ import annotations

import numpy as np

from tailface.data.synthetic import synthetic_eval_faceset
from tailface.eval.openset import open_set_identification
from tailface.eval.verification import verification_rates

VERIFICATION_POINTS = (0.0, 1e-3, 1e-2, 1e-1)
OPENSET_POINTS = (0.0, 1e-2, 1e-1, 1.0)
RANKS = (1, 5, 10)


def eval_faceset(**kw):
    return synthetic_eval_faceset(**kw)


def gallery_split(labels: np.ndarray, gallery_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(gallery_rows, probe_rows)``: one image (the first) per identity for the first
    ``gallery_fraction`` of the identities (by label order); every other image is a probe."""
    labels = np.asarray(labels)
    ids = np.unique(labels)
    in_gallery = ids[: max(1, int(round(len(ids) * gallery_fraction)))]
    first = np.array([np.flatnonzero(labels == i)[0] for i in in_gallery])
    probe = np.setdiff1d(np.arange(len(labels)), first)
    return first, probe


def evaluate_synthetic(features, labels, source: str = "synthetic features") -> dict:
    labels = np.asarray(labels)
    ver = verification_rates(features, labels, VERIFICATION_POINTS, source)
    g, p = gallery_split(labels)
    features = np.asarray(features)
    osi = open_set_identification(features[g], labels[g], features[p], labels[p],
                                  OPENSET_POINTS, RANKS, source)
    return {"protocol": "synthetic",
            "vr_far_0.1%": ver.at(1e-3), "vr_far_1%": ver.at(1e-2),
            "dir_far_1%_rank1": osi.at(1e-2, 1),
            "verification": ver.to_dict(), "openset": osi.to_dict()}
