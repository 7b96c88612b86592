"""Table 3: the baselines, ours, ArcFace and ArcFace + ours on the full training set (ABCD)."""

from __future__ import annotations

from tailface.evidence.tables import LABELS
from tailface.evidence.targets.pages import claims_page
from tailface.evidence.targets.registry import Claim, Target, register_target

BASELINES = ("abcd", "ab", "ab-abcd", "resampling", "center-loss", "range-loss")

register_target(Target(
    "table3", "Table 3: baselines, ours, ArcFace, ArcFace + ours",
    models=(*BASELINES, "ours", "arcface", "arcface-ours"),
    claims=(*(Claim(f"ours > {LABELS[b]}", "ours", b) for b in BASELINES),
            Claim("ArcFace + ours >= ArcFace", "arcface-ours", "arcface")),
    write=claims_page))
