"""Table 2: plain softmax trained on the groups A, AB, ABC and ABCD; does the tail hurt?"""

from __future__ import annotations

from tailface.evidence.targets.pages import claims_page
from tailface.evidence.targets.registry import Claim, Target, register_target

register_target(Target(
    "table2", "Table 2: softmax on A, AB, ABC, ABCD",
    models=("softmax-A", "ab", "softmax-ABC", "abcd"),
    claims=(Claim("AB > ABCD (the tail hurts softmax)", "ab", "abcd"), Claim("AB > ABC", "ab", "softmax-ABC")),
    write=claims_page))
