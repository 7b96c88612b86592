"""Which methods ``tailface study --methods`` trains: the rows of the methods table
(:data:`tailface.evidence.methods.METHODS`, the table ``tailface reproduce methods`` reads), by
their model names, or ``all`` of them. The table is the one list: a row enabled there is a method
the study can train, with no list of names here.

The study always trains AB, ABCD and ours (its own questions: the tail sweep and Table 1), and
those are rows of the table too; the methods it *studies* (the candidates of its recommendation,
:mod:`tailface.evidence.study_recommendation`) are every row whose cell it trains, ABCD being the
reference they are compared with.
"""

from __future__ import annotations

from tailface.errors import ConfigError
from tailface.evidence.methods import METHODS, Method

ALL = "all"


def method_names() -> tuple[str, ...]:
    """The names ``--methods`` accepts (the rows' cell models), in the table's order."""
    return tuple(m.model for m in METHODS)


def parse_methods(text: str) -> tuple[str, ...]:
    """``all`` (alone or in the list) or ``NAME,NAME`` -> the rows' model names in the table's order;
    a ConfigError on one line naming the unknown ones and listing the known ones (before any work)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = method_names()
    if ALL in names:
        return known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        shown = ", ".join(unknown) if unknown else repr(text)
        raise ConfigError(f"--methods {shown}: unknown method{'s' * (len(unknown) > 1)}; choose among "
                          f"{', '.join(known)}, or {ALL}")
    return tuple(n for n in known if n in names)


def methods_argument(chosen: tuple[str, ...]) -> str:
    """How the command that rewrites the page spells ``chosen``: ``all`` for every row, else the names."""
    return ALL if set(chosen) == set(method_names()) else ",".join(chosen)


def studied(trained: list[str]) -> list[Method]:
    """The rows whose cells the study trains (``trained``: its models), in the table's order."""
    return [m for m in METHODS if m.model in trained]
