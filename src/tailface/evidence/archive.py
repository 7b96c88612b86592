"""Cells kept in git: ``tailface reproduce ... --archive DIR``.

A machine's run folder may be wiped between work sessions; only git survives. The archive keeps
what the pages are written from, never a checkpoint: for every finished cell, its small records
at the same paths relative to DIR as in OUT::

    DIR/cells/<model>/seed<k>/<the kind's metrics>    eval/metrics.json, eval/ours/metrics.json
    DIR/cells/<model>/seed<k>/split_reunion.json     an ours cell of a split regime
    DIR/cells/<model>/seed<k>/cell.json              written last (the record), with config_sha256
    DIR/regimes/<regime>/seed<k>/data/manifest.json  each perturbed set's manifest, once

A metrics file is archived compacted (:func:`compact_metrics`): the curves no page reads are left
out (``DROPPED``: BLUFR's per-trial curves, the LFW pairs' ROC points, the open-set curve's spreads),
a cell's 570 KB becoming about 27 KB; every figure a page shows, and Fig. 3's mean open-set curve, stay.

Rules (:mod:`tailface.evidence.reproduce`):

- a file already in the archive is never overwritten (the archive is what the committed pages
  were written from); a cell is copied after it finishes, and a cell finished in OUT before
  ``--archive`` was given is copied when a run skips it;
- the pages read a cell's metrics from OUT, else from DIR (``tables.Results(archive=DIR)``), so
  ``--report-only`` rewrites them from DIR alone;
- a cell archived with the same configuration (``config_sha256``: :func:`fingerprint`) is not
  retrained, unless a cell that starts from it (ours from ab) must train and needs its checkpoint:
  then it is retrained and its figures compared with the archived ones (a loud warning naming the
  cell when they differ; the archive keeps its own); a cell archived with another configuration
  is refused (ConfigError naming both files);
- ``cell.json`` also records the training data the cell was trained on (``data``: the print of
  :func:`tailface.fingerprints.dataset_print`, whose digest holds no path): a cell, archived or
  finished in OUT, trained on another dataset than the run's (the same spec or ``$TAILFACE_DATA``
  naming other data) is refused (:func:`check_data`: ConfigError naming the change and
  ``--accept-changed-inputs``, which keeps it); a record without ``data`` (archived before
  fingerprints) is unknown, not a change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailface.atomic import atomic_path, write_text
from tailface.errors import ConfigError
from tailface.evidence import cells, tables
from tailface.fingerprints import ACCEPT_FLAG, describe_change
from tailface.paths import prepared_root

RECORD = "cell.json"
#: Paths (keys from the document's top) left out of an archived metrics file: no page reads them.
DROPPED = (("blufr", "trials"), ("lfw", "roc"), ("blufr", "openset_curve", "std"),
           ("blufr", "openset_curve", "mean_minus_std"))


def compact_metrics(doc: dict) -> dict:
    """``doc`` (a parsed metrics.json) without the :data:`DROPPED` paths; ``archived_without`` lists
    those it had."""
    out = json.loads(json.dumps(doc))
    dropped = []
    for path in DROPPED:
        parent = out
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent:
            del parent[path[-1]]
            dropped.append(".".join(path))
    if dropped:
        out["archived_without"] = dropped
    return out


def compact_archive(root: Path) -> list[Path]:
    """Compact every metrics file under ``root`` archived before :func:`compact_metrics` existed
    (same figures; rewritten atomically); returns those rewritten."""
    rewritten = []
    for path in sorted(Path(root).rglob("metrics.json")):
        doc = json.loads(path.read_text())
        if "archived_without" not in doc and compact_metrics(doc) != doc:
            rewritten.append(write_text(path, json.dumps(compact_metrics(doc)) + "\n"))
    return rewritten


def _neutral(value: Any, prefixes: list[tuple[str, str]]) -> Any:
    """``value`` with every string under a prefix rewritten to its placeholder."""
    if isinstance(value, dict):
        return {str(k): _neutral(v, prefixes) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_neutral(v, prefixes) for v in value]
    if isinstance(value, str):
        for prefix, placeholder in prefixes:
            if value == prefix or value.startswith(prefix.rstrip("/") + "/"):
                return placeholder + value[len(prefix.rstrip("/")):]
    return value


def _prefixes(root: Path) -> list[tuple[str, str]]:
    return [(str(Path(root).absolute()), "<OUT>"), (str(root), "<OUT>"),
            (str(prepared_root().absolute()), "<TAILFACE_DATA>")]


def _without_progress(value: Any) -> Any:
    """``value`` without any ``progress`` key (progress bars on or off change no result)."""
    if isinstance(value, dict):
        return {k: _without_progress(v) for k, v in value.items() if k != "progress"}
    return value


def fingerprint(doc: dict, root: Path, perturbation: dict | None = None) -> str:
    """sha256 of a cell's configuration (``cells.cell_config``, without ``progress`` keys:
    ``--no-progress``) and its regime's perturbation, with the run folder written as ``<OUT>`` and
    the prepared data root as ``<TAILFACE_DATA>``: the same cell in another run folder, or a clone
    elsewhere, has the same fingerprint."""
    prefixes = _prefixes(root)
    record = {"config": _neutral(_without_progress(doc), prefixes), "perturbation": _neutral(perturbation, prefixes)}
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def data_record(spec: str, found: dict, root: Path) -> dict:
    """What ``cell.json`` keeps of the training data's print ``found``: spec (``<OUT>`` and
    ``<TAILFACE_DATA>`` for those folders), digest, its parts and counts."""
    return {**found, "spec": _neutral(spec, _prefixes(root))}


def check_data(record: dict, current: dict | None, where: Path, what: str, redo: str, accept_changed: bool) -> str:
    """``"same"``, ``"unknown"`` (``record`` has no ``data``: written before dataset fingerprints)
    or ``"accepted"`` (another dataset, kept: ``accept_changed``); ConfigError naming the change, the
    flag and ``redo`` (how to train it again) when the data differs."""
    old = record.get("data")
    if current is None:
        return "same"
    if not isinstance(old, dict) or "sha256" not in old:
        return "unknown"
    if old["sha256"] == current["sha256"]:
        return "same"
    if not accept_changed:
        raise ConfigError(f"{where}: {what} was trained on other data than this run's "
                          f"({describe_change('data', old, current)}); {redo}, or {ACCEPT_FLAG} to keep it")
    return "accepted"


@dataclass(frozen=True)
class Archive:
    root: Path

    def cell(self, model: str, seed: int) -> Path:
        return cells.cell_dir(self.root, model, seed)

    def record_path(self, model: str, seed: int) -> Path:
        return self.cell(model, seed) / RECORD

    def record(self, model: str, seed: int) -> dict | None:
        """The archived ``cell.json`` of a cell whose metrics are archived too; else None."""
        path = self.record_path(model, seed)
        if not (path.is_file() and cells.metrics_path(self.root, model, seed).is_file()):
            return None
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{path}: not a readable cell record (JSON); restore it from git or delete "
                              f"{self.cell(model, seed)}") from None
        return doc if isinstance(doc, dict) else {}

    def holds(self, model: str, seed: int, config_sha256: str, cell: Path, data: dict | None = None,
              accept_changed: bool = False, unknown: list | None = None) -> bool:
        """Whether the cell is archived with this configuration (and, ``data`` given, trained on this
        data: :func:`check_data`; a record without it is appended to ``unknown``). ConfigError,
        naming the archived record and the cell's ``config.yaml``, when it was archived with another."""
        doc = self.record(model, seed)
        if doc is None:
            return False
        if doc.get("config_sha256") != config_sha256:
            raise ConfigError(f"{self.record_path(model, seed)}: {model} seed {seed} was archived with another "
                              f"configuration (config_sha256 {str(doc.get('config_sha256'))[:12]}) than "
                              f"{cell / 'config.yaml'} has now ({config_sha256[:12]}); delete "
                              f"{self.cell(model, seed)} to train it again, or use another --archive")
        found = check_data(doc, data, self.record_path(model, seed), f"{model} seed {seed}",
                           f"delete {self.cell(model, seed)} to train it again, use another --archive", accept_changed)
        if found == "unknown" and unknown is not None:
            unknown.append(self.record_path(model, seed))
        return True

    def keep(self, run_root: Path, files: list[str], record_file: str | None = None,
             record: dict | None = None) -> list[Path]:
        """Copy ``files`` (paths relative to ``run_root``) that the archive lacks, then write
        ``record`` as ``record_file`` if absent; returns the files written."""
        written = []
        for rel in files:
            source, target = Path(run_root) / rel, self.root / rel
            if source.is_file() and not target.exists():
                if source.name == "metrics.json":
                    write_text(target, json.dumps(compact_metrics(json.loads(source.read_text()))) + "\n")
                else:
                    with atomic_path(target) as tmp:
                        shutil.copyfile(source, tmp)
                written.append(target)
        if record_file is not None and record is not None and not (self.root / record_file).exists():
            written.append(write_text(self.root / record_file, json.dumps(record, indent=1) + "\n"))
        return written

    def differences(self, run_root: Path, model: str, seed: int) -> list[str]:
        """The figures (``tables.METRICS`` and the development VR) in which the cell in
        ``run_root`` and its archived copy differ, as ``name: new vs archived`` (percent)."""
        pair = [cells.metrics_path(r, model, seed) for r in (Path(run_root), self.root)]
        if not all(p.is_file() for p in pair):
            return []
        new, old = (json.loads(p.read_text()) for p in pair)
        out = []
        for metric in [*tables.METRICS, tables.DEV]:
            a, b = _figure(metric, new), _figure(metric, old)
            if a != b:
                out.append(f"{metric.name}: {_percent(a)} vs {_percent(b)}")
        return out


def _figure(metric: tables.Metric, metrics: dict) -> float | None:
    try:
        return float(metric.get(metrics))
    except (KeyError, IndexError, TypeError):
        return None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.4f}"
