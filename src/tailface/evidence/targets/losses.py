"""Class-count-aware losses: logit-adjusted softmax (Menon et al., ICLR 2021) and LDAM with deferred
re-weighting (Cao et al., NeurIPS 2019), trained on the full set (ABCD) like plain softmax, against
ABCD softmax and ours; AB for reference (docs/method.md has their equations)."""

from __future__ import annotations

from functools import partial

from tailface.evidence.targets.pages import claims_page
from tailface.evidence.targets.registry import Claim, Target, register_target

NOTE = ("The paper (Ma et al. 2020) has no figures for these two losses: their paper columns show -. Both are trained "
        "on ABCD with the network, budget and data of ABCD softmax; the claims are ours: does a loss that knows the "
        "class counts beat plain softmax on the full set (ABCD) and aggregate-and-disperse (ours)?")

register_target(Target(
    "losses", "Class-count-aware losses: logit-adjusted softmax and LDAM-DRW",
    models=("abcd", "ab", "ours", "logit-adjusted", "ldam-drw"),
    claims=(Claim("logit-adjusted > ABCD", "logit-adjusted", "abcd"),
            Claim("logit-adjusted > ours", "logit-adjusted", "ours"),
            Claim("LDAM-DRW > ABCD", "ldam-drw", "abcd"), Claim("LDAM-DRW > ours", "ldam-drw", "ours")),
    write=partial(claims_page, preamble=NOTE, source="ours, not the paper's")))
