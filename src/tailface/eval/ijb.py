"""IJB-B / IJB-C evaluation of per-image features: template pooling, 1:1 verification, 1:N search.

``evaluate_ijb(features, image_ids, release, mode)``: the features (one row per face crop, matched to
the release's image list by ``image_ids``) are pooled into template features
(:mod:`tailface.eval.ijb_templates`, options ``mode``), the 1:1 pair list is scored and read at FAR
1e-6 .. 1e-1 both exactly and at the nearest ROC point (:mod:`tailface.eval.ijb_verification`), and
the 1:N probe templates search the two galleries separately and merged
(:mod:`tailface.eval.ijb_identification`). Every convention is named in the result's
``conventions``; docs/evaluation.md states them with the anchors' differences.
"""

from __future__ import annotations

import numpy as np

from tailface.data.ijb_release import IjbRelease
from tailface.data.ordering import rows_for
from tailface.eval.ijb_identification import FPIRS, RANKS, identification
from tailface.eval.ijb_templates import PoolingMode, index_of, template_features
from tailface.eval.ijb_verification import IJB_FARS, VerificationFigures, verify_pairs

CONVENTIONS = {
    "tar_exact": "k = round(FAR x impostor pairs) (halves up); threshold = the k-th largest impostor score; "
                 "TAR = share of genuine pairs scoring >= threshold (k = 0: > every impostor); tailface's BLUFR rule",
    "tar_nearest": "TPR of the scikit-learn roc_curve point (drop_intermediate=True) whose FPR is nearest FAR, the "
                   "last of equally near points; no interpolation (insightface arcface_torch eval_ijbc.py, "
                   "ijb_evals.py; AdaFace)",
    "rank": "1 + gallery templates scoring above the mate + equal-scoring ones earlier in ascending template id "
            "(BLUFR's stable order); rank-k over mated searches",
    "separate": "G1 and G2 (IJB-B: S1, S2) each searched by every probe template, probes of the other gallery's "
                "subjects non-mated; figures per gallery and their mean (insightface ijb_evals.py); pooled_rank: "
                "hits of both over the mated searches of both",
    "merged": "one gallery G1 + G2 (insightface ijb_1n.py, AdaFace validate_IJB_BC.py)",
    "exact": "FPIR over the non-mated searches' top scores: k = round(FPIR n); threshold = k-th largest; a mated "
             "search counts when its mate is rank 1 and scores >= threshold (tailface's BLUFR open-set rule); "
             "undefined without non-mated searches",
    "anchor": "separate: threshold = sorted non-mated top scores[max(int(FPIR n) - 1, 0)], mate > threshold and > "
              "every non-mate (ijb_evals.py; k - 1 false alarms at the threshold: the off-by-one); merged: "
              "threshold = ceil(FPIR q)-th largest of all non-mate (search, template) scores, q = searches, "
              "mate > threshold, no rank condition (ijb_1n.py, AdaFace)",
}


def evaluate_ijb(features: np.ndarray, image_ids, release: IjbRelease, mode: PoolingMode = PoolingMode(),
                 fars=IJB_FARS, fpirs=FPIRS, ranks=RANKS, source: str = "features",
                 progress: bool = False) -> tuple[dict, VerificationFigures]:
    """``(result, 1:1 figures)`` of per-image ``features`` on ``release``; see the module docstring."""
    images, pairs, (g1, g2, probe) = release.images, release.pairs, release.searches  # every file read first
    rows = rows_for(image_ids, images.names, source, key=str)
    ids = np.unique(images.templates)
    first = index_of(ids, pairs.first, str(pairs.path))
    second = index_of(ids, pairs.second, str(pairs.path))
    for listed in (g1, g2, probe):
        index_of(ids, listed.templates, str(listed.path))
    if not np.array_equal(rows, np.arange(len(rows))):
        features = np.asarray(features)[rows]
    ids, templates = template_features(np.asarray(features), images.scores, images.templates, images.medias, mode,
                                       source=source)
    verification = verify_pairs(templates, first, second, pairs.label, fars, str(pairs.path), progress)
    galleries = {}
    for name, gallery in zip(release.gallery_names, (g1, g2)):
        galleries[name] = (gallery.templates, templates[index_of(ids, gallery.templates, str(gallery.path))],
                           gallery.subjects, str(gallery.path))
    probes = templates[index_of(ids, probe.templates, str(probe.path))]
    search = identification(probes, probe.subjects, galleries, fpirs, ranks)
    result = {
        "protocol": release.kind, "release": str(release.root),
        "pooling": {"norm": mode.norm, "detector_score": mode.detector, "flip_fusion": True,
                    "default": mode.is_default, "description": mode.describe()},
        "images": len(images), "templates": len(ids),
        "verification": {"pairs": len(pairs), **verification.to_dict()},
        "identification": search, "conventions": CONVENTIONS,
    }
    return result, verification
