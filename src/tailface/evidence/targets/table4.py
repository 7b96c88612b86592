"""Table 4: the number of super classes N_k, as a multiple of the automatic choice."""

from __future__ import annotations

from functools import partial

from tailface.evidence.targets.pages import claims_page
from tailface.evidence.targets.registry import Claim, Target, register_target

NOTE = ("Paper: N_k = 1,800 / 3,600 / 7,200 (auto) / 14,400; baseline = ABCD. Ours (row 'Ours' = 1 x the automatic "
        "N_k).")

register_target(Target(
    "table4", "Table 4: the number of super classes N_k",
    models=("abcd", "ab", "ours-nk0.25", "ours-nk0.5", "ours", "ours-nk2"),  # ab: the base model, not a row
    claims=(Claim("1 x auto > 0.25 x auto", "ours", "ours-nk0.25"), Claim("1 x auto > 2 x auto", "ours", "ours-nk2"),
            Claim("1 x auto vs 0.5 x auto (paper: about equal)", "ours", "ours-nk0.5")),
    write=partial(claims_page, shown=("abcd", "ours-nk0.25", "ours-nk0.5", "ours", "ours-nk2"), preamble=NOTE)))
