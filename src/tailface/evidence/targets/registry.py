"""Reproduce targets as records: what ``tailface reproduce NAME`` trains and writes.

A :class:`Target` is one table or figure: its ``name`` (the command line's word), its ``title``
(the page's heading), the ``models`` whose cells it reads (:mod:`tailface.evidence.cells`; their
base models are trained first, :func:`tailface.evidence.cells.dependencies`), its ``claims``
(orderings "A > B", each tested on the paired seeds with a 95% interval and a verdict) and
``write(target, inputs) -> Report``: the page's markdown and the numbers it shows, as data.
``tailface reproduce`` writes them as ``OUT/<name>.md`` and ``OUT/<name>.json``
(:mod:`tailface.evidence.reproduce`); ``tailface study`` takes the reports as returned, never
parsing a page back.

:func:`register_target` adds a record (names are unique); the registration order is the order of
``all`` and of the command line's help.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tailface.data.faceset import FaceSet
from tailface.data.groups import GroupThresholds
from tailface.errors import ConfigError
from tailface.evidence.tables import Results


class Claim(NamedTuple):
    """The claim "``a`` > ``b``", shown as ``text`` (e.g. "ours > ABCD")."""

    text: str
    a: str
    b: str


@dataclass(frozen=True)
class Inputs:
    """What every writer gets: the finished cells (``results``: where, which seeds), the training
    set as the cells see it and its group thresholds, and the folder its page (and plots) go to."""

    results: Results
    faceset: FaceSet
    thresholds: GroupThresholds
    out: Path


@dataclass(frozen=True)
class Report:
    """A writer's result: the page's body in ``markdown`` (reproduce adds the title and the line
    saying how it was made) and the numbers it shows in ``data`` (JSON types; ``nan`` is written
    as null)."""

    markdown: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Target:
    """One table or figure of ``tailface reproduce`` (see the module docstring)."""

    name: str  # the command line's word, and OUT/<name>.md, OUT/<name>.json
    title: str  # the page's heading
    models: tuple[str, ...]  # the cells it reads (cells.MODELS), in training order; the page counts their cells
    claims: tuple[Claim, ...]  # "a > b", each tested on the paired seeds
    write: Callable[[Target, Inputs], Report]


_TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    if target.name in _TARGETS or target.name == "all":
        raise ValueError(f"reproduce target {target.name!r} registered twice (or named 'all')")
    _TARGETS[target.name] = target
    return target


def target_names() -> list[str]:
    """The registered targets, in registration order (the order of ``all``)."""
    return list(_TARGETS)


def get_target(name: str) -> Target:
    if name not in _TARGETS:
        raise ConfigError(f"unknown reproduce target {[name]}; choose among {', '.join(_TARGETS)}, all")
    return _TARGETS[name]


def parse_names(text: str) -> list[str]:
    """``table2,fig2`` or ``all`` -> target names; ConfigError naming the unknown ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return target_names()
    unknown = [n for n in names if n not in _TARGETS]
    if unknown or not names:
        raise ConfigError(f"unknown reproduce target {unknown or names}; choose among {', '.join(_TARGETS)}, all")
    return names
