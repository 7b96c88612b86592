"""Protocol family ``ijbb:PATH`` / ``ijbc:PATH``: IJB-B / IJB-C 1:1 and 1:N (:mod:`tailface.eval.ijb`).

``PATH`` is the release folder as insightface distributes it (``IJB_release/IJBC``: ``meta/`` and
``loose_crop/``; or the folder above it). Template pooling options are name modifiers:
``ijbc+unitnorm:PATH`` (image features L2-normalised before pooling), ``ijbc+nodetector:PATH`` (no
detector-score weighting), both together; without them the mode is arcface_torch's default. Each
name is its own protocol (metrics key = the canonical name, modifiers sorted) and all of one
release share one evaluation set, ``ijbc:PATH``: the loose crops aligned at the model's input size
(:class:`tailface.data.ijb_aligned.AlignedIjb`, cached under ``$TAILFACE_DATA/ijbc-aligned``) and one
feature extraction, whatever the number of variants. Plots: ``<t>[+modifiers]_roc.png`` and the ROC
points as ``<t>[+modifiers]_roc.csv`` (``fpr,tpr,threshold``: scikit-learn's points).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from tailface.atomic import write_text
from tailface.data.faceset import FaceSet
from tailface.data.ijb_aligned import AlignedIjb
from tailface.data.ijb_release import IjbRelease
from tailface.errors import ConfigError
from tailface.eval.ijb import evaluate_ijb
from tailface.eval.ijb_templates import PoolingMode
from tailface.eval.plots import plot_roc_points
from tailface.eval.protocols.registry import (
    EvalOptions,
    EvalSet,
    Features,
    Protocol,
    get_eval_set,
    register_eval_set,
    register_protocol_family,
)
from tailface.eval.roc_points import RocPoints

NAME = re.compile(r"^(ijbb|ijbc)((?:\+[^:+]*)*):(.+)$")
MODIFIERS = {"unitnorm": "image features L2-normalised before pooling", "nodetector": "no detector-score weighting"}

_RELEASES: dict[tuple, IjbRelease] = {}
_ROC: dict[str, tuple[RocPoints, list, list]] = {}  # protocol name -> its last ROC (points, FARs, exact TARs)


def matches(name: str) -> bool:
    return re.match(r"^ijb[bc][+:]", name) is not None


def parse_name(name: str) -> tuple[str, tuple[str, ...], str]:
    """``(kind, sorted modifiers, path)``; :class:`ConfigError` for an unknown modifier."""
    m = NAME.match(name)
    if m is None:
        raise ConfigError(f"{name!r}: expected ijbb:PATH or ijbc:PATH (optionally +unitnorm, +nodetector "
                          "before the colon)")
    kind, mods, path = m.group(1), m.group(2).split("+")[1:], m.group(3)
    unknown = [x for x in mods if x not in MODIFIERS]
    if unknown or len(set(mods)) != len(mods):
        raise ConfigError(f"{name!r}: unknown or repeated modifier {unknown or mods}; choose among "
                          f"{', '.join('+' + k for k in MODIFIERS)}")
    return kind, tuple(sorted(mods)), path


def release(kind: str, path: str) -> IjbRelease:
    """The release at ``path``, parsed once per process while its meta files stay unchanged (the
    evaluation set and each pooling variant read the same files)."""
    opened = IjbRelease.open(kind, path)
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(opened.meta.iterdir()))
    key = (kind, str(opened.root.resolve()), stamp)
    return _RELEASES.setdefault(key, opened)


def open_aligned(kind: str, path: str, options: EvalOptions, image_size: tuple[int, int]) -> FaceSet:
    if image_size[0] != image_size[1]:
        raise ConfigError(f"{kind}: the loose crops are aligned to a square; the model's input is "
                          f"{image_size[0]}x{image_size[1]}")
    return AlignedIjb(release(kind, path).read_all(), image_size[0],  # bad files found before the alignment
                      template=options.template, progress=options.progress)  # the model's template (None: arcface)


def evaluate(kind: str, path: str, mode: PoolingMode, name: str, features: Features, options: EvalOptions) -> dict:
    result, verification = evaluate_ijb(features.features, features.image_ids, release(kind, path), mode,
                                        source=features.source, progress=options.progress)
    _ROC[name] = (verification.roc, verification.fars.tolist(), verification.exact["tar"])
    return {**result, "name": name}


def _pct(values) -> str:
    return " / ".join("n/a" if v is None else f"{100 * v:.2f}" for v in values)


def summary(m: dict) -> list[tuple[str, str]]:
    v, s = m["verification"], m["identification"]
    p = m["pooling"]
    rows = [("pooling", f"norm {p['norm']}, detector score {'on' if p['detector_score'] else 'off'}"
                        f"{' (arcface_torch default)' if p['default'] else ''}")]
    rows += [(f"1:1 TAR@FAR={far:.0e} exact / nearest ROC point", _pct([e, n]))
             for far, e, n in zip(v["far"], v["tar_exact"], v["tar_nearest"])]
    g = "/".join(k for k in s["separate"] if k not in ("mean", "pooled_rank"))
    fp = "/".join(f"{100 * f:g}%" for f in s["fpir"])
    ranks = "/".join(str(r) for r in s["ranks"])
    sep, merged = s["separate"]["mean"], s["merged"]
    rows += [(f"1:N rank-{ranks}, {g} separate (mean)", _pct(sep["rank"].values())),
             (f"1:N TPIR@FPIR={fp}, {g} separate (mean), exact", _pct(sep["exact"])),
             (f"1:N TPIR@FPIR={fp}, {g} separate (mean), anchor (ijb_evals.py)", _pct(sep["anchor"])),
             (f"1:N rank-{ranks}, merged", _pct(merged["rank"].values())),
             (f"1:N TPIR@FPIR={fp}, merged, exact", _pct(merged["exact"]["tpir"])),
             (f"1:N TPIR@FPIR={fp}, merged, anchor (ijb_1n.py)", _pct(merged["anchor"]["tpir"]))]
    return rows


def plots(name: str, m: dict, out_dir: Path) -> list[Path]:
    if name not in _ROC:
        return []
    roc, fars, tars = _ROC[name]
    stem = name.split(":", 1)[0]
    lines = ["fpr,tpr,threshold"] + [f"{f!r},{t!r},{h!r}" for f, t, h in zip(roc.fpr.tolist(), roc.tpr.tolist(),
                                                                            roc.thresholds.tolist())]
    csv_path = write_text(out_dir / f"{stem}_roc.csv", "\n".join(lines) + "\n")
    png = plot_roc_points(roc.fpr, roc.tpr, out_dir / f"{stem}_roc.png", marks=(fars, tars),
                          title=f"{stem.upper()} 1:1 ROC ({roc.n_genuine} genuine, {roc.n_impostor} impostor pairs)")
    return [png, csv_path]


def make(name: str) -> Protocol:
    kind, mods, path = parse_name(name)
    mode = PoolingMode("unit" if "unitnorm" in mods else "keep", "nodetector" not in mods)
    set_name = f"{kind}:{path}"
    canonical = f"{kind}{''.join('+' + x for x in mods)}:{path}"
    try:
        get_eval_set(set_name)
    except KeyError:
        register_eval_set(EvalSet(set_name, functools.partial(open_aligned, kind, path)))
    return Protocol(canonical, set_name, functools.partial(evaluate, kind, path, mode, canonical), summary,
                    functools.partial(plots, canonical))


register_protocol_family(matches, make, "ijbb:PATH or ijbc:PATH (an IJB release; +unitnorm, +nodetector)")
