"""Evaluation entry points: a checkpoint or a features file -> metrics.json, plots, one table.

The protocols come from the registry (:mod:`tailface.eval.protocols`): ``synthetic`` (held-out
synthetic identities), ``blufr`` (BLUFR on LFW), ``lfw`` (LFW 6,000 pairs), ``megaface-proxy``
(MegaFace-style identification on LFW). For a checkpoint, the features of each evaluation set
that the requested protocols need are extracted once (flip fusion); those of a cached set (LFW)
are kept in ``out_dir`` as ``<set>_features_<key>.npz``, the key naming the model file's bytes,
the preprocessing overrides, the set's fingerprint (:mod:`tailface.fingerprints`: another pack
evaluated into the same ``out_dir`` is never read from the first one's cache) and, when the pack
records one or ``--data-template`` / ``--template`` is given, the templates. ``metrics.json``
records the evaluation sets it read (``eval_sets``: spec and fingerprint, :func:`eval_set_record`)
and the model file's sha256.

The model's alignment template is compared with each aligned evaluation set's
(:mod:`tailface.eval.alignment_check`): a difference is a warning naming both, a missing record a
note (arcface assumed), all kept in ``metrics.json`` under ``alignment``. Protocols that align raw
images themselves get the model's template in ``EvalOptions.template``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tailface.atomic import write_text
from tailface.data.faceset import FaceSet
from tailface.errors import ProtocolError
from tailface.eval.alignment_check import AlignmentCheck, TemplateOf, data_template, model_template
from tailface.eval.embedder import embedder_key, load_embedder
from tailface.eval.features import load_features, save_features
from tailface.eval.protocols import EvalOptions, Features, get_eval_set, get_protocol, parse_protocols, protocols_in
from tailface.eval.protocols.registry import EvalSet
from tailface.eval.vectors import checked_features
from tailface.fingerprints import dataset_print, faceset_print, file_print
from tailface.provenance import runtime


def _cache_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def check_features(features: Features) -> None:
    """Refuse NaN/inf or all-zero feature rows, naming the file's rows and their image ids (a
    protocol's own check would name rows of its own subsets)."""
    x = np.asarray(features.features)
    if x.ndim == 2 and np.issubdtype(x.dtype, np.number):
        for bad, what in ((~np.isfinite(x).all(axis=1), "hold NaN or inf"), (~(x != 0).any(axis=1), "are all zero")):
            rows = np.flatnonzero(bad)
            if len(rows):
                ids = "" if features.image_ids is None else \
                    f"; image ids {', '.join(str(features.image_ids[r]) for r in rows[:3])}"
                raise ProtocolError(f"{features.source}: {len(rows)} of {len(x)} feature rows {what} (rows "
                                    f"{', '.join(map(str, rows[:5].tolist()))}{', ...' if len(rows) > 5 else ''}"
                                    f"{ids}); evaluation refused")
    checked_features(x, features.source)


def evaluate_protocols(features: Features, protocols, options: EvalOptions = EvalOptions()) -> dict:
    """``{protocol: result}`` of every protocol in ``protocols`` on one set's ``features``, which
    are checked first (:func:`check_features`)."""
    check_features(features)
    return {name: get_protocol(name).evaluate(features, options) for name in parse_protocols(protocols)}


def summary_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """``(protocol, metric, value in %)`` for every registered protocol present in ``metrics``."""
    return [(name, metric, value) for name in protocols_in(metrics)
            for metric, value in get_protocol(name).summary(metrics[name])]


def format_table(metrics: dict) -> str:
    """The summary table, then the tables of the protocols that have their own (the verification suite)."""
    rows = [("protocol", "metric", "value (%)")] + summary_rows(metrics)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    tables = [table(metrics[name]) for name in protocols_in(metrics)
              if (table := get_protocol(name).table) is not None]
    return "\n\n".join(["\n".join(lines), *tables])


def _finish(metrics: dict, out_dir: Path, plots: bool) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        metrics["plots"] = [str(path) for name in protocols_in(metrics)
                            for path in get_protocol(name).plots(metrics[name], out_dir)]
    metrics["environment"] = runtime()  # what must match to reproduce these figures bit for bit
    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))  # atomic: never read half-written
    print(format_table(metrics))
    return metrics


def read_features(path) -> Features:
    """A features file written by :func:`tailface.eval.features.save_features`."""
    loaded = load_features(path)
    if loaded.get("features") is None:
        raise ProtocolError(f"{path}: no 'features' array in the features file")
    ids = loaded.get("image_ids")
    return Features(np.asarray(loaded["features"]), None if ids is None else [str(i) for i in ids],
                    loaded.get("labels"), str(path))


def _data_template_key(data: TemplateOf | None, data_override: str | None) -> str:
    """The part of a feature cache's key that names the data's alignment ('' for an unrecorded,
    undeclared pack: the key of caches written before templates existed)."""
    if data is None or (data.assumed and data_override is None):
        return ""
    return f"|data={data.template}|{data.origin}"


def eval_set_record(eval_set: EvalSet, options: EvalOptions, faceset: FaceSet) -> dict:
    """What ``metrics.json`` records of an evaluation set it read (``eval_sets``): its spec (the
    pack, else the set's source) and fingerprint (:func:`tailface.fingerprints.dataset_print` of
    the pack as opened, else :func:`~tailface.fingerprints.faceset_print`), images, classes."""
    pack = eval_set.pack(options) if eval_set.pack is not None else None
    found = dataset_print(pack, faceset) if pack is not None else {"spec": str(faceset.source),
                                                                    **faceset_print(faceset)}
    return {"spec": str(found["spec"]), "fingerprint": found["sha256"], "images": len(faceset),
            "classes": faceset.num_classes}


def eval_set_prints(protocols, lfw=None) -> dict[str, dict]:
    """The prints of the evaluation sets ``protocols`` read, from their files alone (cheap; the
    inputs of an experiment's evaluation stage): each pack's, the synthetic generator's."""
    options = EvalOptions(None if lfw is None else Path(lfw))
    prints = {}
    for name in dict.fromkeys(get_protocol(p).eval_set for p in parse_protocols(protocols)):
        eval_set = get_eval_set(name)
        pack = eval_set.pack(options) if eval_set.pack is not None else "synthetic" if name == "synthetic" else None
        if pack is not None:
            prints[f"eval set {name}"] = dataset_print(pack)
    return prints


def _features_of_set(embedder, set_name: str, key: str, out_dir: Path,
                     options: EvalOptions) -> tuple[Features, Path | None, dict]:
    """The set's features (read from OUT's cache when it holds them for this model, preprocessing
    and set: the set's fingerprint is part of the cache's name) and its record (:func:`eval_set_record`)."""
    eval_set = get_eval_set(set_name)
    faceset = eval_set.open(options, embedder.image_size)  # first: what it holds keys the cache
    record = eval_set_record(eval_set, options, faceset)
    name = f"{set_name}_features_{_cache_key(key + '|' + record['fingerprint'])}.npz"
    cache = out_dir / name if eval_set.cache else None
    if cache is not None and cache.is_file():
        return read_features(cache), cache, record
    feats = embedder.extract(faceset, options.batch_size, flip=True, progress=options.progress)
    if cache is None:
        return Features(feats, list(faceset.image_ids), np.asarray(faceset.labels), str(faceset.source)), None, record
    out_dir.mkdir(parents=True, exist_ok=True)
    save_features(cache, feats, faceset.image_ids, faceset.labels)
    return Features(feats, list(faceset.image_ids), np.asarray(faceset.labels), str(cache)), cache, record


def evaluate_checkpoint(checkpoint, protocols=("synthetic",), out_dir="eval", lfw=None,
                        faces_root=None, batch_size: int = 64, plots: bool = True, heldout=None, *, size=None,
                        mean=None, std=None, channel_order=None, template=None, data_template_name=None,
                        device=None, progress: bool = True) -> dict:
    """Evaluate a model file (a tailface ``.pt`` checkpoint or an ``.onnx`` model, through
    :func:`tailface.eval.embedder.load_embedder`, on ``device``, None: CUDA when available; ``size``,
    ``mean``, ``std``, ``channel_order``, ``template`` override its preprocessing; ``data_template_name``:
    the template the evaluation packs were cut with, over their records; ``progress``: progress bars);
    returns (and writes to ``out_dir/metrics.json``) the metrics."""
    protocols = parse_protocols(protocols)
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    overrides = {"size": size, "mean": mean, "std": std, "channel_order": channel_order, "template": template}
    embedder = load_embedder(checkpoint, device=device, **overrides)
    model = model_template(str(checkpoint), embedder.preprocessing.template, template)
    check = AlignmentCheck()
    check.set_model(model)
    options = EvalOptions(None if lfw is None else Path(lfw), None if faces_root is None else Path(faces_root),
                          batch_size, heldout, template=model.template, progress=progress)
    key = embedder_key(checkpoint, **overrides)
    metrics: dict = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_print(checkpoint)["sha256"],
                     "preprocessing": embedder.preprocessing.describe(), "eval_sets": {}}
    for set_name in dict.fromkeys(get_protocol(p).eval_set for p in protocols):
        eval_set = get_eval_set(set_name)
        pack = eval_set.pack(options) if eval_set.pack is not None else None
        data = None
        if pack is not None:
            data = data_template(pack, data_template_name)
            check.compare(pack, data)
        set_key = _cache_key(key + _data_template_key(data, data_template_name))
        features, cache, metrics["eval_sets"][set_name] = _features_of_set(embedder, set_name, set_key, out_dir,
                                                                           options)
        if cache is not None:
            metrics[f"{set_name}_features"] = str(cache)
        metrics.update(evaluate_protocols(features, [p for p in protocols if get_protocol(p).eval_set == set_name],
                                          options))
    metrics["alignment"] = check.to_dict()
    return _finish(metrics, out_dir, plots)


def evaluate_features(features_path, protocols=("blufr", "lfw", "megaface-proxy"), out_dir="eval",
                      faces_root=None, plots: bool = True) -> dict:
    """Evaluate a features ``.npz`` (``features``, ``image_ids``, optional ``labels``) with
    protocols that all use the set the features are of (LFW for the LFW protocols, the synthetic
    evaluation set, with labels, for ``synthetic``)."""
    features = read_features(features_path)
    options = EvalOptions(faces_root=None if faces_root is None else Path(faces_root))
    metrics: dict = {"features": str(features_path), "features_sha256": file_print(features_path)["sha256"]}
    metrics.update(evaluate_protocols(features, protocols, options))
    return _finish(metrics, Path(out_dir), plots)
