"""The protocol registry: what a protocol needs (an evaluation set), how it evaluates features of
that set, the rows it adds to summary tables, and its plots.

An evaluation set names the images whose features a protocol scores: ``lfw`` (the aligned LFW
set, features cached per checkpoint) or ``synthetic`` (held-out synthetic identities). Several
protocols on one set share one feature extraction. Registering a protocol::

    register_protocol(Protocol(name="my-protocol", eval_set="lfw", evaluate=my_evaluate,
                               summary=my_rows, plots=my_plots))

with ``my_evaluate(features: Features, options: EvalOptions) -> dict`` (JSON-able; stored
under ``metrics[name]``), ``my_rows(result) -> [(metric, value text in %)]`` and
``my_plots(result, out_dir) -> [paths]``; optionally ``table=my_table``, ``my_table(result) ->
str``, a table of its own printed after the summary table (the verification suite's).
docs/architecture.md has a worked example.

An evaluation set of aligned images names, with ``pack(options) -> path``, the pack whose alignment
record (:mod:`tailface.data.alignment_record`) says which template its images were cut with, so
that evaluation can warn when a model was trained on another (:mod:`tailface.eval.alignment_check`).

A protocol *family* is named by a pattern rather than one name: ``register_protocol_family(
matches, make)`` where ``matches(name)`` tells whether ``name`` belongs to it (e.g. a path ending in
``.bin``) and ``make(name) -> Protocol`` builds the protocol, and registers its evaluation set,
the first time the name is used (``eval/protocols/verification_bin.py``: ``bin:PATH`` / ``PATH.bin``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.data.faceset import FaceSet
from tailface.errors import ConfigError


@dataclass(frozen=True)
class EvalOptions:
    lfw: Path | None = None  # aligned LFW set (default: the prepared one)
    faces_root: Path | None = None  # real data root: BLUFR configuration, pairs.txt
    batch_size: int = 64
    heldout: Callable[[], FaceSet] | None = None  # the held-out identities of a training set (tailface study)
    template: str | None = None  # alignment template to cut raw inputs with (the model's; None: arcface)
    progress: bool = True  # progress bars (feature extraction, alignment, pair scoring); --no-progress


@dataclass(frozen=True)
class Features:
    """Features of an evaluation set, one row per image, with the images' ids (and labels)."""

    features: np.ndarray
    image_ids: list[str] | None
    labels: np.ndarray | None
    source: str  # file or description, for error messages


@dataclass(frozen=True)
class EvalSet:
    name: str
    open: Callable[[EvalOptions, tuple[int, int]], FaceSet]  # (options, image size) -> images
    cache: bool = False  # keep extracted features in the output folder (expensive sets)
    pack: Callable[[EvalOptions], str | None] | None = None  # aligned pack whose template to check (None: not aligned)


def _no_plots(result: dict, out_dir: Path) -> list[Path]:
    return []


@dataclass(frozen=True)
class Protocol:
    name: str
    eval_set: str
    evaluate: Callable[[Features, EvalOptions], dict]
    summary: Callable[[dict], list[tuple[str, str]]]
    plots: Callable[[dict, Path], list[Path]] = _no_plots
    table: Callable[[dict], str] | None = None  # a table of its own, printed after the summary table


_PROTOCOLS: dict[str, Protocol] = {}
_SETS: dict[str, EvalSet] = {}
_FAMILIES: list[tuple[Callable[[str], bool], Callable[[str], Protocol], str]] = []
_MADE: dict[str, Protocol] = {}  # protocols made by a family, by the name they were asked for


def register_protocol_family(matches: Callable[[str], bool], make: Callable[[str], Protocol],
                             syntax: str) -> None:
    """Protocols named by a pattern (``syntax`` is its description for error messages)."""
    _FAMILIES.append((matches, make, syntax))


def _family_protocol(name: str) -> Protocol | None:
    if name in _MADE:
        return _MADE[name]
    for matches, make, _ in _FAMILIES:
        if matches(name):
            protocol = make(name)
            if protocol.eval_set not in _SETS:
                raise ValueError(f"protocol {name!r}: its evaluation set {protocol.eval_set!r} is not registered")
            _MADE[name] = _MADE[protocol.name] = protocol
            return protocol
    return None


def register_protocol(protocol: Protocol) -> Protocol:
    if protocol.name in _PROTOCOLS:
        raise ValueError(f"protocol {protocol.name!r} registered twice")
    _PROTOCOLS[protocol.name] = protocol
    return protocol


def register_eval_set(eval_set: EvalSet) -> EvalSet:
    if eval_set.name in _SETS:
        raise ValueError(f"evaluation set {eval_set.name!r} registered twice")
    _SETS[eval_set.name] = eval_set
    return eval_set


def list_protocols() -> list[str]:
    """The registered protocol names (not those of families, which are made on use)."""
    return list(_PROTOCOLS)


def protocols_in(metrics: dict) -> list[str]:
    """The protocols with a result in ``metrics``: registered ones in registry order, then
    family ones (``bin:...``) in the order of ``metrics``."""
    return [n for n in _PROTOCOLS if n in metrics] + [n for n in metrics if n not in _PROTOCOLS and n in _MADE]


def get_protocol(name: str) -> Protocol:
    name = parse_protocols([name])[0]
    return _PROTOCOLS.get(name) or _MADE[name]


def get_eval_set(name: str) -> EvalSet:
    return _SETS[name]


def parse_protocols(protocols) -> list[str]:
    """A comma-separated string or a list -> the protocol names, checked against the registry
    (a family's names in their canonical form, e.g. ``data/lfw.bin`` -> ``bin:data/lfw.bin``)."""
    if isinstance(protocols, str):
        protocols = [p.strip() for p in protocols.split(",") if p.strip()]
    protocols = [str(p) for p in protocols or []]
    unknown = [p for p in protocols if p not in _PROTOCOLS and _family_protocol(p) is None]
    protocols = [p if p in _PROTOCOLS or p in unknown else _MADE[p].name for p in protocols]  # canonical names
    if unknown or not protocols:
        families = "".join(f", {syntax}" for _, _, syntax in _FAMILIES)
        raise ConfigError(f"unknown or no evaluation protocols {unknown or protocols}; "
                          f"choose among {', '.join(_PROTOCOLS)}{families}")
    return protocols
