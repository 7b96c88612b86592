"""Protocol family ``verification:DIR``: every verification ``.bin`` of a folder in one call.

``tailface eval MODEL --protocols verification:data/val`` evaluates each ``.bin`` directly in
``data/val`` (lfw, cfp_fp, agedb_30, calfw, cplfw, whatever is there; sorted by file name, each
named by its file stem) with the single-file protocol ``bin:PATH``
(:mod:`tailface.eval.protocols.verification_bin`, whose ``evaluate`` it calls on each file's rows:
there is no second implementation), and prints one table::

    set       pairs  accuracy (%)    threshold  TAR@FAR=0.1%  TAR@FAR=1%  TAR@FAR=10%
    agedb_30  6000   95.20 +- 1.10   0.2310     ...
    mean             96.00                      ...

accuracy = mean +- standard deviation (N - 1) of the 10 fold accuracies; threshold = the mean of
the 10 fold thresholds (cosine; each chosen on the other 9 folds); TAR at FAR over all pairs of
the set (the shared FAR rule). The mean row is the unweighted mean over the sets of the accuracy
and of each TAR (a set counts once whatever its number of pairs). The metrics key is
``verification:DIR``; its result holds ``sets`` (``{stem: the bin:PATH result}``) and ``mean``.

The images of all the files form one evaluation set (``BinSuiteFaceSet``, one feature
extraction, not cached); its rows are cut back into the files' blocks in file order. In
``eval.during_training.sets`` the same ``verification:DIR`` names every file of the folder
(:mod:`tailface.eval.during_training`). A missing folder, or one without ``.bin`` files, is a
one-line :class:`~tailface.errors.DataError` naming the folder when the set is opened.
"""

from __future__ import annotations

import functools

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.data.verification_bin import BinSuiteFaceSet, bin_files
from tailface.errors import ConfigError, ProtocolError
from tailface.eval.protocols import verification_bin as single
from tailface.eval.protocols.registry import (
    EvalOptions,
    EvalSet,
    Features,
    Protocol,
    get_eval_set,
    get_protocol,
    register_eval_set,
    register_protocol_family,
)

PREFIX = "verification:"

_PARTS: dict[str, list[tuple[str, str, int]]] = {}  # folder -> [(stem, path, images)] of the suite last opened


def matches(name: str) -> bool:
    return name.startswith(PREFIX)


def suite_folder(name: str) -> str:
    return name[len(PREFIX):]


def open_suite(folder: str) -> FaceSet:
    """Every .bin of ``folder`` as one FaceSet (each read once, through the single-file protocol)."""
    files = bin_files(folder)
    parts = [single.open_bin(str(f)) for f in files]
    _PARTS[folder] = [(f.stem, str(f), len(p)) for f, p in zip(files, parts)]
    return BinSuiteFaceSet(parts, [f.stem for f in files], folder)


def evaluate(folder: str, features: Features, options: EvalOptions) -> dict:
    """The ``bin:PATH`` result of each file on its block of rows, and their mean."""
    if folder not in _PARTS:
        open_suite(folder)  # a features file: the files say how many rows each has
    parts = _PARTS[folder]
    total = sum(n for _, _, n in parts)
    if len(features.features) != total:
        raise ProtocolError(f"{features.source}: {len(features.features)} feature rows, but the .bin files of "
                            f"{folder} hold {total} images")
    sets, start = {}, 0
    for stem, path, n in parts:
        rows = slice(start, start + n)
        block = Features(features.features[rows],
                         None if features.image_ids is None else list(features.image_ids[rows]),
                         None if features.labels is None else features.labels[rows], f"{features.source} [{stem}]")
        sets[stem] = get_protocol(single.PREFIX + path).evaluate(block, options)
        start += n
    return {"protocol": "verification-suite", "folder": folder, "sets": sets, "mean": mean_row(sets)}


def mean_row(sets: dict) -> dict:
    """Unweighted means over the sets: accuracy, and TAR at the FARs every set reports."""
    results = list(sets.values())
    fars = [f for f in results[0].get("tar_at_far", {}) if all(f in r.get("tar_at_far", {}) for r in results)]
    return {"accuracy_mean": float(np.mean([r["accuracy_mean"] for r in results])),
            "tar_at_far": {f: float(np.mean([r["tar_at_far"][f] for r in results])) for f in fars},
            "sets": len(results)}


def threshold(result: dict) -> float:
    """The mean of a set's fold thresholds (cosine)."""
    return float(np.mean(result["fold_threshold"]))


def _percent_far(far: str) -> str:
    return f"{100 * float(far):g}%"


def table(m: dict) -> str:
    """The suite's own table: one row per set, then the mean row."""
    fars = list(m["mean"]["tar_at_far"])
    header = ["set", "pairs", "accuracy (%)", "threshold", *(f"TAR@FAR={_percent_far(f)}" for f in fars)]
    rows = [header]
    for stem, r in m["sets"].items():
        rows.append([stem, str(r["pairs"]), f"{100 * r['accuracy_mean']:.2f} +- {100 * r['accuracy_std']:.2f}",
                     f"{threshold(r):.4f}", *(f"{100 * r['tar_at_far'][f]:.2f}" for f in fars)])
    mean = m["mean"]
    rows.append(["mean", "", f"{100 * mean['accuracy_mean']:.2f}", "",
                 *(f"{100 * mean['tar_at_far'][f]:.2f}" for f in fars)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([f"verification suite {m['folder']}", *lines])


def summary(m: dict) -> list[tuple[str, str]]:
    rows = [(f"{stem} 10-fold accuracy ({r['pairs']} pairs)",
             f"{100 * r['accuracy_mean']:.2f} +- {100 * r['accuracy_std']:.2f}") for stem, r in m["sets"].items()]
    return rows + [(f"mean 10-fold accuracy ({m['mean']['sets']} sets)", f"{100 * m['mean']['accuracy_mean']:.2f}")]


def make(name: str) -> Protocol:
    folder = suite_folder(name)
    if not folder:
        raise ConfigError(f"protocol {name!r}: name the folder of .bin files, e.g. verification:data/val")
    set_name = PREFIX + folder
    try:
        get_eval_set(set_name)
    except KeyError:
        register_eval_set(EvalSet(set_name, lambda options, size: open_suite(folder), pack=lambda options: folder))
    return Protocol(set_name, set_name, functools.partial(evaluate, folder), summary, table=table)


register_protocol_family(matches, make, "verification:DIR (every verification .bin of a folder)")
