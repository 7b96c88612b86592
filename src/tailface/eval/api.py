"""Evaluation entry points: a checkpoint or a features file -> metrics.json, plots, one table.

Protocols: ``synthetic`` (held-out synthetic identities), ``blufr`` (BLUFR on LFW), ``lfw`` (LFW
6,000 pairs), ``megaface-proxy`` (MegaFace-style identification on LFW, see
:func:`tailface.eval.megaface.lfw_proxy_split`). LFW features are extracted once (flip fusion) and
cached in ``out_dir`` as ``lfw_features_<key>.npz``, the key naming the checkpoint file and its
modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tailface.errors import ConfigError, DataError, ProtocolError

PROTOCOLS = ("synthetic", "blufr", "lfw", "megaface-proxy")
LFW_PROTOCOLS = ("blufr", "lfw", "megaface-proxy")


def parse_protocols(protocols) -> list[str]:
    if isinstance(protocols, str):
        protocols = [p.strip() for p in protocols.split(",") if p.strip()]
    protocols = list(protocols)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ConfigError(f"unknown or no evaluation protocols {unknown or protocols}; "
                          f"choose among {', '.join(PROTOCOLS)}")
    return protocols


def _input_size(meta: dict) -> int:
    for key in ("input_size", "image_size"):
        size = meta.get(key)
        if size:
            return int(size[0] if isinstance(size, (list, tuple)) else size)
    spec = meta.get("model_spec") or {}
    size = spec.get("kwargs", {}).get("input_size")
    if size is None and spec.get("name"):
        from tailface.models import default_input_size

        size = default_input_size(spec["name"])
    size = size or 112
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _lfw_faceset(lfw):
    from tailface.data.open import open_faceset
    from tailface.paths import prepared_path

    path = Path(lfw) if lfw is not None else prepared_path("lfw")
    if not path.exists():
        raise DataError(f"{path}: aligned LFW set not found; run `tailface prepare lfw` first "
                        "(or pass --lfw DIR)")
    return open_faceset(str(path))


def _cache_key(checkpoint: Path) -> str:
    stat = checkpoint.stat()
    text = f"{checkpoint.resolve()}|{stat.st_mtime_ns}|{stat.st_size}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def identity_of(image_id: str) -> str:
    """LFW identity from an image id (``Name/Name_0001.jpg`` or ``Name_0001.jpg``)."""
    return str(image_id).replace("\\", "/").rsplit("/", 1)[-1].rsplit("_", 1)[0]


def evaluate_lfw_features(features, image_ids, protocols, faces_root=None, source="LFW features") -> dict:
    """The LFW-based protocols on features of the aligned LFW images (any row order)."""
    from tailface.paths import faces_root as default_root

    root = Path(faces_root) if faces_root is not None else default_root()
    out = {}
    if "blufr" in protocols:
        from tailface.eval.blufr import evaluate_blufr, load_blufr_config

        config = load_blufr_config(root / "blufr" / "blufr_lfw_config.mat")
        out["blufr"] = evaluate_blufr(features, config, image_ids=image_ids, source=source)
    if "lfw" in protocols:
        from tailface.eval.lfw_pairs import evaluate_lfw_pairs, read_pairs

        out["lfw"] = evaluate_lfw_pairs(features, image_ids, read_pairs(root / "lfw" / "pairs.txt"),
                                        source=source)
    if "megaface-proxy" in protocols:
        from tailface.eval.megaface import PROXY_MIN_IMAGES, lfw_proxy_split, megaface_identification

        if image_ids is None:
            raise ProtocolError(f"{source}: image ids are needed for the MegaFace proxy")
        labels = np.unique([identity_of(i) for i in image_ids], return_inverse=True)[1]
        probe, distractor = lfw_proxy_split(labels)
        features = np.asarray(features)
        res = megaface_identification(features[probe], labels[probe], features[distractor],
                                      source=source)
        res.update(protocol="megaface-proxy", probe_min_images=PROXY_MIN_IMAGES,
                   n_probe_identities=int(len(np.unique(labels[probe]))),
                   n_distractors_available=int(len(distractor)))
        out["megaface-proxy"] = res
    return out


def _plots(metrics: dict, out_dir: Path) -> list[str]:
    from tailface.eval import plots

    written = []
    if "blufr" in metrics:
        v, o = metrics["blufr"]["verification_curve"], metrics["blufr"]["openset_curve"]
        written.append(plots.plot_roc(v["far"], v["mean"], out_dir / "blufr_roc.png",
                                      title="BLUFR verification ROC (mean of 10 trials)"))
        rank1 = np.asarray(o["mean"])[o["rank"].index(1)]
        written.append(plots.plot_dir(o["far"], rank1, out_dir / "blufr_dir.png"))
        fi = int(np.argmin(np.abs(np.asarray(o["far"]) - 1e-2)))
        written.append(plots.plot_cmc(o["rank"], np.asarray(o["mean"])[:, fi], out_dir / "blufr_cmc.png",
                                      title="BLUFR open-set CMC at FAR = 1%"))
    if "lfw" in metrics:
        roc = metrics["lfw"]["roc"]
        written.append(plots.plot_roc(roc["far"], roc["tar"], out_dir / "lfw_roc.png", title="LFW pairs ROC"))
    if "synthetic" in metrics:
        v = metrics["synthetic"]["verification"]
        written.append(plots.plot_roc(v["far"], v["vr"], out_dir / "synthetic_roc.png",
                                      title="Synthetic held-out verification ROC"))
    if "megaface-proxy" in metrics:
        m = metrics["megaface-proxy"]
        written.append(plots.plot_cmc(list(range(1, 11)), m["cmc"], out_dir / "megaface_proxy_cmc.png",
                                      title="MegaFace proxy CMC",
                                      labels=[f"{n} distractors" for n in m["distractor_counts"]]))
    return [str(p) for p in written]


def summary_rows(metrics: dict) -> list[tuple[str, str, str]]:
    rows = []
    if "synthetic" in metrics:
        m = metrics["synthetic"]
        rows += [("synthetic", "VR@FAR=0.1%", f"{100 * m['vr_far_0.1%']:.2f}"),
                 ("synthetic", "VR@FAR=1%", f"{100 * m['vr_far_1%']:.2f}"),
                 ("synthetic", "DIR@FAR=1%,rank1", f"{100 * m['dir_far_1%_rank1']:.2f}")]
    if "blufr" in metrics:
        for key, name in (("vr_far_0.1%", "VR@FAR=0.1%"), ("dir_far_1%_rank1", "DIR@FAR=1%,rank1")):
            s = metrics["blufr"]["report"][key]
            rows.append(("blufr", name, f"{100 * s['mean']:.2f} +- {100 * s['std']:.2f} "
                                        f"(mean-std {100 * s['mean_minus_std']:.2f})"))
    if "lfw" in metrics:
        m = metrics["lfw"]
        rows.append(("lfw", "10-fold accuracy", f"{100 * m['accuracy_mean']:.2f} +- {100 * m['accuracy_std']:.2f}"))
        for far, v in m["tar_at_far"].items():
            rows.append(("lfw", f"TAR@FAR={float(far) * 100:g}%", f"{100 * v:.2f}"))
    if "megaface-proxy" in metrics:
        m = metrics["megaface-proxy"]
        for n, r in zip(m["distractor_counts"], m["rank1"]):
            rows.append(("megaface-proxy", f"rank-1 @ {n} distractors", f"{100 * r:.2f}"))
    return rows


def format_table(metrics: dict) -> str:
    rows = [("protocol", "metric", "value (%)")] + summary_rows(metrics)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _finish(metrics: dict, out_dir: Path, plots: bool) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        metrics["plots"] = _plots(metrics, out_dir)
    tmp = out_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1))
    os.replace(tmp, out_dir / "metrics.json")
    print(format_table(metrics))
    return metrics


def read_features(path) -> tuple[np.ndarray, list | None, np.ndarray | None]:
    """``(features, image_ids, labels)`` from a features file written by
    :func:`tailface.eval.features.save_features` (whatever container ``load_features`` returns)."""
    from tailface.eval.features import load_features

    loaded = load_features(path)
    if isinstance(loaded, tuple):
        loaded = dict(zip(("features", "image_ids", "labels"), loaded))
    get = loaded.get if isinstance(loaded, dict) else (lambda k, d=None: getattr(loaded, k, d))
    features = get("features")
    if features is None:
        raise ProtocolError(f"{path}: no 'features' array in the features file")
    ids = get("image_ids")
    return np.asarray(features), (None if ids is None else [str(i) for i in ids]), get("labels")


def evaluate_checkpoint(checkpoint, protocols=("synthetic",), out_dir="eval", lfw=None,
                        faces_root=None, batch_size: int = 64, plots: bool = True) -> dict:
    """Evaluate a trained checkpoint; returns (and writes to ``out_dir/metrics.json``) the metrics."""
    from tailface.eval.features import extract_features, save_features
    from tailface.train.checkpoint import load_model

    protocols = parse_protocols(protocols)
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    model, meta = load_model(checkpoint)
    size = _input_size(meta)
    metrics: dict = {"checkpoint": str(checkpoint)}
    if "synthetic" in protocols:
        from tailface.eval.synthetic import eval_faceset, evaluate_synthetic

        faceset = eval_faceset(image_size=size)
        feats = extract_features(model, faceset, size, batch_size, flip=True)
        metrics["synthetic"] = evaluate_synthetic(feats, faceset.labels)
    lfw_protocols = [p for p in protocols if p in LFW_PROTOCOLS]
    if lfw_protocols:
        out_dir.mkdir(parents=True, exist_ok=True)
        cache = out_dir / f"lfw_features_{_cache_key(checkpoint)}.npz"
        if cache.is_file():
            feats, ids, _ = read_features(cache)
        else:
            faceset = _lfw_faceset(lfw)
            feats = extract_features(model, faceset, size, batch_size, flip=True)
            ids = list(faceset.image_ids)
            save_features(cache, feats, ids, faceset.labels)
        metrics["lfw_features"] = str(cache)
        metrics.update(evaluate_lfw_features(feats, ids, lfw_protocols, faces_root, source=str(cache)))
    return _finish(metrics, out_dir, plots)


def evaluate_features(features_path, protocols=("blufr", "lfw", "megaface-proxy"), out_dir="eval",
                      faces_root=None, plots: bool = True) -> dict:
    """Evaluate a features ``.npz`` (``features``, ``image_ids``, optional ``labels``): LFW
    features for the LFW protocols, features of the synthetic evaluation set (with labels) for
    ``synthetic``."""
    protocols = parse_protocols(protocols)
    feats, ids, labels = read_features(features_path)
    metrics: dict = {"features": str(features_path)}
    if "synthetic" in protocols:
        if labels is None:
            raise ProtocolError(f"{features_path}: protocol 'synthetic' needs labels in the features file")
        from tailface.eval.synthetic import evaluate_synthetic

        metrics["synthetic"] = evaluate_synthetic(feats, labels, source=str(features_path))
    lfw_protocols = [p for p in protocols if p in LFW_PROTOCOLS]
    if lfw_protocols:
        metrics.update(evaluate_lfw_features(feats, ids, lfw_protocols, faces_root, source=str(features_path)))
    return _finish(metrics, Path(out_dir), plots)
