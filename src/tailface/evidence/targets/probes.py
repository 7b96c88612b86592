"""Probes: the method's choices changed one at a time, each against ``ours`` (and ArcFace + ours)
on BLUFR's development split."""

from __future__ import annotations

from tailface.evidence import cells
from tailface.evidence.tables import LABELS, VERDICT_NOTE, variants_numbers, variants_table
from tailface.evidence.targets.registry import Inputs, Report, Target, register_target

INTRO = ("Each probe changes one choice of the method (everything else as in `ours`) and is compared with `ours` on "
         "BLUFR's development split; ABCD softmax is shown for reference. A probe that beats `ours` on the "
         "development split is a candidate default; the test columns are reported, not used to choose. "
         "`renormalize_phi` acts only with a margin head, so it is probed on ArcFace + ours.")


def groups() -> dict[str, list[str]]:
    """The model probed -> its rows: itself, its probes (and ABCD softmax beside ``ours``)."""
    return {of: [of, *variants] + (["abcd"] if of == "ours" else []) for of, variants in cells.PROBED.items()}


def write(target: Target, inputs: Inputs) -> Report:
    parts = [INTRO]
    for of, models in groups().items():
        parts += ["", f"## {LABELS.get(of, of)}", "", variants_table(inputs.results, of, models)]
    return Report("\n".join(parts + ["", VERDICT_NOTE]), {"probed": {
        of: variants_numbers(inputs.results, of, models) for of, models in groups().items()}})


register_target(Target(
    "probes", "Probes: why ours is below ABCD here, one change at a time (BLUFR development split)",
    ("abcd", *(m for of, variants in cells.PROBED.items() for m in (of, *variants))), (), write))
