"""BLUFR on LFW (Liao et al., IJCB 2014) from the official ``blufr_lfw_config.mat``.

The configuration lists 13,233 image file names (``imageList``) and labels; per trial (10 of them)
``testIndex`` (about 9,700 images), ``galIndex`` (1,000 images, one per gallery identity) and
``probIndex`` (the rest of the test set: genuine and impostor probes); ``devTrainIndex`` /
``devTestIndex`` form the development split. All indexes are 1-based into ``imageList`` (gallery
and probe indexes too: they are subsets of the trial's test indexes).

Per trial: features L2-normalised, score = dot product; verification over every unordered pair
of the test set (:mod:`verification`), open-set identification of the probes against the gallery
(:mod:`openset`). Reported: VR at FAR = 0.1 % and DIR at FAR = 1 %, rank 1, as mean, standard
deviation (N - 1) and mean - std over the trials; curves are averaged the same way. The
development split is evaluated by verification over all pairs of ``devTestIndex``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from tailface.data.ordering import rows_for
from tailface.errors import ProtocolError
from tailface.eval.openset import OPENSET_FARS, OPENSET_RANKS, probe_statistics, rates_from_statistics
from tailface.eval.vectors import l2_normalize
from tailface.eval.verification import VERIFICATION_FARS, PairScores
from tailface.paths import faces_root

REQUIRED = ("imageList", "labels", "trainIndex", "testIndex", "galIndex", "probIndex",
            "devTrainIndex", "devTestIndex")
REPORT_VERIFICATION_FAR = 1e-3
REPORT_OPENSET_FAR = 1e-2
REPORT_RANK = 1


@dataclass
class Trial:
    train: np.ndarray    # 0-based indexes into image_list
    test: np.ndarray
    gallery: np.ndarray
    probe: np.ndarray


@dataclass
class BlufrConfig:
    image_list: list[str]
    labels: np.ndarray
    trials: list[Trial]
    dev_train: np.ndarray
    dev_test: np.ndarray
    source: str


def default_config_path() -> Path:
    return faces_root() / "blufr" / "blufr_lfw_config.mat"


def load_blufr_config(path=None) -> BlufrConfig:
    """Read and check a BLUFR configuration; :class:`ProtocolError` naming the file otherwise."""
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        raise ProtocolError(f"{path}: BLUFR configuration not found")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for non-.mat input
        raise ProtocolError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in REQUIRED if k not in mat]
    if missing:
        raise ProtocolError(f"{path}: not a BLUFR configuration (missing variables: {', '.join(missing)})")
    try:
        names = [str(np.asarray(c).ravel()[0]) for c in mat["imageList"].ravel()]
        labels = np.asarray(mat["labels"]).ravel().astype(np.int64)
        n = len(names)

        def idx(a, what):
            a = np.asarray(a).ravel().astype(np.int64)
            if a.size == 0 or a.min() < 1 or a.max() > n:
                raise ProtocolError(f"{path}: {what} holds indexes outside 1..{n}")
            return a - 1

        cells = {k: [np.asarray(c) for c in np.asarray(mat[k]).ravel()]
                 for k in ("trainIndex", "testIndex", "galIndex", "probIndex")}
        if len({len(v) for v in cells.values()}) != 1:
            raise ProtocolError(f"{path}: trainIndex/testIndex/galIndex/probIndex differ in trial count")
        trials = []
        for t in range(len(cells["testIndex"])):
            trial = Trial(*(idx(cells[k][t], f"{k}{{{t + 1}}}")
                            for k in ("trainIndex", "testIndex", "galIndex", "probIndex")))
            test = set(trial.test.tolist())
            if not (set(trial.gallery.tolist()) <= test and set(trial.probe.tolist()) <= test):
                raise ProtocolError(f"{path}: trial {t + 1}: gallery/probe images outside the test set")
            trials.append(trial)
        config = BlufrConfig(names, labels, trials, idx(mat["devTrainIndex"], "devTrainIndex"),
                             idx(mat["devTestIndex"], "devTestIndex"), str(path))
    except (IndexError, ValueError, TypeError) as exc:
        raise ProtocolError(f"{path}: malformed BLUFR configuration ({exc})") from None
    if len(labels) != n:
        raise ProtocolError(f"{path}: {len(labels)} labels for {n} images")
    if not trials:
        raise ProtocolError(f"{path}: no trials")
    return config


def features_in_config_order(features, image_ids, config: BlufrConfig, source: str) -> np.ndarray:
    """Rows of ``features`` reordered to ``config.image_list`` (matched on file names)."""
    features = np.asarray(features)
    if image_ids is not None and len(image_ids) != len(features):
        raise ProtocolError(f"{source}: {len(image_ids)} image ids for {len(features)} feature rows")
    rows = rows_for(image_ids, config.image_list, source)
    return features[rows]


def summarize(values: np.ndarray) -> dict:
    """mean, std (N - 1) and mean - std along the first axis (trials)."""
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean(axis=0)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
    as_list = (lambda a: a.tolist()) if np.ndim(mean) else float
    return {"mean": as_list(mean), "std": as_list(std), "mean_minus_std": as_list(mean - std)}


def evaluate_blufr(features, config: BlufrConfig, image_ids=None,
                   verification_fars=VERIFICATION_FARS, openset_fars=OPENSET_FARS,
                   ranks=OPENSET_RANKS, source: str = "features") -> dict:
    """The BLUFR benchmark. ``features`` follow ``config.image_list`` unless ``image_ids`` is given
    (then rows are matched on file names and must cover the list exactly)."""
    if image_ids is not None:
        features = features_in_config_order(features, image_ids, config, source)
    features = np.asarray(features)
    if len(features) != len(config.image_list):
        raise ProtocolError(f"{source}: {len(features)} feature rows, the BLUFR configuration "
                            f"{config.source} lists {len(config.image_list)} images")
    x = l2_normalize(features, source)
    verification_fars = np.asarray(verification_fars, dtype=np.float64)
    ranks = np.asarray(ranks, dtype=np.int64)
    for far, points in ((REPORT_VERIFICATION_FAR, verification_fars), (REPORT_OPENSET_FAR, openset_fars)):
        if not np.isclose(points, far, rtol=1e-9, atol=0).any():
            raise ProtocolError(f"FAR grid must contain the report point {far}")
    if REPORT_RANK not in ranks:
        raise ProtocolError(f"rank points must contain {REPORT_RANK}")
    inner = verification_fars[verification_fars < 1]
    # the trials' galleries share few images (1,680 in all for LFW): the verification pass also
    # collects every image's scores against their union; each trial reads its probe x gallery block
    union, column_of = np.unique(np.concatenate([t.gallery for t in config.trials]), return_inverse=True)
    pairs = PairScores(x, config.labels, float(inner.max()) if inner.size else 0.0, source,
                       columns=union)
    against_galleries = pairs.column_scores
    assert against_galleries is not None
    trials = []
    start = 0
    for t, trial in enumerate(config.trials):
        ver = pairs.evaluate(trial.test, verification_fars)
        columns = column_of[start:start + len(trial.gallery)]
        start += len(trial.gallery)
        rows = trial.probe
        stats = probe_statistics(
            None, config.labels[trial.gallery], rows, config.labels[trial.probe],
            scores=lambda p0, p1, rows=rows, columns=columns: against_galleries[np.ix_(rows[p0:p1], columns)])
        osi = rates_from_statistics(*stats, openset_fars, ranks, f"{source} trial {t + 1}")
        trials.append((ver, osi))
    vr = np.array([v.rates for v, _ in trials])
    dirs = np.array([o.dir for _, o in trials])
    vi = int(np.flatnonzero(np.isclose(verification_fars, REPORT_VERIFICATION_FAR, rtol=1e-9, atol=0))[0])
    oi = int(np.flatnonzero(np.isclose(np.asarray(openset_fars), REPORT_OPENSET_FAR, rtol=1e-9, atol=0))[0])
    ri = int(np.flatnonzero(ranks == REPORT_RANK)[0])
    dev_pairs = PairScores(x[config.dev_test], config.labels[config.dev_test],
                           float(inner.max()) if inner.size else 0.0, f"{source} (dev test)")
    dev = dev_pairs.evaluate(None, verification_fars)
    return {
        "protocol": "blufr",
        "config": config.source,
        "report": {
            "vr_far_0.1%": summarize(vr[:, vi]),
            "dir_far_1%_rank1": summarize(dirs[:, ri, oi]),
        },
        "per_trial": {"vr_far_0.1%": vr[:, vi].tolist(), "dir_far_1%_rank1": dirs[:, ri, oi].tolist()},
        "verification_curve": {"far": verification_fars.tolist(), **summarize(vr)},
        "openset_curve": {"far": np.asarray(openset_fars, dtype=float).tolist(),
                          "rank": ranks.tolist(), **summarize(dirs)},
        "development": {"vr_far_0.1%": dev.at(REPORT_VERIFICATION_FAR), "verification": dev.to_dict()},
        "trials": [{"verification": v.to_dict(), "openset": o.to_dict()} for v, o in trials],
    }
