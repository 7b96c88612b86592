"""``tailface reproduce methods`` (issue 21): the methods of :mod:`tailface.evidence.methods` on the
profile's training set, each against ABCD and against ours on the paired seeds.

The page: what each method changes, its source and where its hyper-parameters come from
(``methods.HYPER_NOTE``: the shared scale and margin chosen on held-out identities, the rest the
papers'), which rows combine ours with a method and why the others do not, then the model table and
the claims (``pages.claims_page``: "M > ABCD" and "M > ours" for every row M, and "ours + M > M" for
a combination), and a reading: the methods whose interval against ABCD lies above 0 on both metrics,
and the best method by mean DIR@FAR=1% with its combination with ours, where defined.
:func:`method_page` writes the shallow page (``targets/shallow.py``) too, on the ``MODEL@shallow``
cells.
"""

from __future__ import annotations

from collections.abc import Callable

from tailface.evidence import methods, tables
from tailface.evidence.methods import METHODS, Method
from tailface.evidence.stats import HOLDS, paired_difference
from tailface.evidence.targets.pages import claims_page
from tailface.evidence.targets.registry import Claim, Inputs, Report, Target, register_target

DIR = tables.CLAIM_METRICS[1]  # the best method is the best mean DIR@FAR=1%


def _same(model: str) -> str:
    return model


def claims(cell: Callable[[str], str] = _same) -> tuple[Claim, ...]:
    """Every row against ABCD and against ours (ours against ABCD once, in that direction), and each
    combination against the method it carries; ``cell`` maps a row's model to the cell read
    (``MODEL@shallow`` on the shallow page)."""
    out = []
    for m in METHODS:
        for ref in methods.REFERENCES:
            if m.model not in methods.REFERENCES[:methods.REFERENCES.index(ref) + 1]:
                out.append(Claim(f"{m.label} > {methods.BY_MODEL[ref].label}", cell(m.model), cell(ref)))
        if m.combines:
            out.append(Claim(f"{m.label} > {methods.BY_MODEL[m.combines].label}", cell(m.model), cell(m.combines)))
    return tuple(out)


def methods_table() -> str:
    lines = ["| method | what it changes | source | hyper-parameters |", "|---|---|---|---|"]
    lines += [f"| {m.label} | {m.what} | {m.source} | {m.hyper} |" for m in METHODS]
    return "\n".join(lines)


def candidates() -> list[Method]:
    """The rows a "best method" is chosen among: not the references, AB, nor a combination."""
    return [m for m in METHODS if m.model not in (*methods.REFERENCES, "ab") and not m.combines]


def reading(inputs: Inputs, cell: Callable[[str], str] = _same) -> tuple[list[str], dict]:
    """Which methods beat ABCD beyond noise (both claim metrics), and the best one by mean DIR with
    its combination with ours; markdown lines and the same as data."""
    results = inputs.results
    metrics = tables.available(results, tables.CLAIM_METRICS)
    beats = [m.label for m in METHODS if m.model != "abcd" and all(
        paired_difference(results.values(cell(m.model), metric), results.values(cell("abcd"), metric)).verdict
        == HOLDS for metric in metrics)]
    scored = [m for m in candidates() if results.cell(cell(m.model), DIR).n]
    best = max(scored, key=lambda m: results.cell(cell(m.model), DIR).mean) if scored else None
    combined = next((m for m in METHODS if best is not None and m.combines == best.model), None)
    lines = ["## Reading", "",
             f"Beats ABCD beyond noise (the 95% interval of the paired difference above 0 on "
             f"{' and '.join(m.name for m in metrics)}): {', '.join(beats) if beats else '**none**'}.", ""]
    if best is None:
        lines.append("Best method by mean " + DIR.name + ": none finished yet.")
    else:
        d = paired_difference(results.values(cell(best.model), DIR), results.values(cell("abcd"), DIR))
        with_ours = (f"ours combined with it is the row {combined.label}" if combined else
                     "ours combined with it is not defined (see above)")
        lines.append(f"Best method by mean {DIR.name} (among the rows other than ABCD, AB, ours and the "
                     f"combinations): {best.label}, {results.cell(cell(best.model), DIR).text()}; against ABCD "
                     f"{d.text()}: {d.verdict}; {with_ours}.")
    return lines, {"beats_abcd": beats, "best": cell(best.model) if best else None,
                   "best_with_ours": cell(combined.model) if combined else None}


def method_page(target: Target, inputs: Inputs, cell: Callable[[str], str] = _same,
                before: list[str] | None = None) -> Report:
    """The methods' page on the cells ``cell(row)``: ``before`` (the shallow page's set and claim),
    the methods table, the hyper-parameter and combination notes, the model table (the rows' cells)
    and the target's claims, and the reading."""
    preamble = [*(before or []), methods_table(), "", methods.HYPER_NOTE, "", methods.combinable_note()]
    report = claims_page(target, inputs, shown=[cell(m.model) for m in METHODS], preamble="\n".join(preamble),
                         source="tailface's question, not a paper's")
    lines, data = reading(inputs, cell)
    rows = {m.model: {"cell": cell(m.model), "label": m.label, "what": m.what, "source": m.source,
                      "hyper": m.hyper, "combines": m.combines} for m in METHODS}
    return Report("\n".join([report.markdown, "", *lines]),
                  {**report.data, "methods": rows, "hyper_note": methods.HYPER_NOTE, **data})


register_target(Target(
    "methods", "Methods for shallow and noisy tails against ABCD and ours",
    models=methods.MODELS, claims=claims(), write=method_page))
