"""The recommendation that ends ``tailface study``'s page: which method, if any, beats plain softmax
on all identities (ABCD) on the user's held-out identities beyond noise.

**The rule** (said on the page, :data:`RULE`). Every method studied (a row of
:data:`tailface.evidence.methods.METHODS` whose cells the study trained, ABCD excepted) is compared
with ABCD seed by seed on both metrics of the held-out identities (:data:`METRICS`: VR@FAR=0.1% and
DIR@FAR=1%, the claims of ``tailface reproduce``): ``d_s = M_s - ABCD_s``, the 95% t-interval of
the mean of ``d`` (:func:`tailface.evidence.stats.paired_difference`). Its standing:

- **beats ABCD**: both intervals above 0;
- **one metric only**: one interval above 0, the other containing 0 (not enough: not recommended);
- **metrics disagree**: one interval above 0, the other below;
- **worse**: an interval below 0 and none above; **within noise**: both contain 0;
- **one seed** / **not run yet**: fewer than 2 paired seeds (no interval) / none.

The outcome: no method with 2 paired seeds or more -> **one seed** (nothing can be recommended;
or **not run yet**); else the methods that beat ABCD, and of those the one with the largest mean
DIR@FAR=1% gain (:data:`RANKED_BY`; then VR) is recommended (their order among themselves is not
tested, and the page says so); none -> "nothing beats plain softmax here beyond noise", with every
interval listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tailface.evidence import tables
from tailface.evidence.methods import Method
from tailface.evidence.stats import HOLDS, NO_DATA, NOISE, ONE_SEED, REVERSED, PairedDifference, paired_difference

METRICS = tuple(m.name for m in tables.CLAIM_METRICS)  # VR@FAR=0.1%, DIR@FAR=1% (held-out identities)
RANKED_BY = METRICS[1]  # among the methods that beat ABCD: the largest mean DIR@FAR=1% gain
REFERENCE = "abcd"
NOTHING = "nothing beats plain softmax here beyond noise"
BEATS, ONE_METRIC, DISAGREE, WORSE = "beats ABCD", "one metric only", "metrics disagree", "worse"
RECOMMEND, NONE, ONE = "recommend", "nothing beats", "one seed"
RULE = (f"**The rule.** Each method is compared with plain softmax on all identities (ABCD) seed by seed on the "
        f"held-out identities: the paired differences method - ABCD of {METRICS[0]} and of {METRICS[1]} with their "
        f"95% t-intervals over the seeds. A method beats ABCD only when both intervals lie above 0; better on one "
        f"metric and within noise on the other is not enough, and when the metrics disagree (one interval above 0, "
        f"the other below) nothing is claimed. Among the methods that beat ABCD, the one with the largest mean "
        f"{RANKED_BY} gain is named (their order among themselves is not tested). With one seed there is no "
        f"interval and nothing is recommended. Each method runs at its shipped settings, not tuned on this data "
        f"(docs/method.md gives each method's values and their source).")

Values = Mapping[str, Mapping[str, Mapping[int, float]]]  # model -> metric name -> {seed: value}


@dataclass(frozen=True)
class Comparison:
    """One method against ABCD: the paired difference on each metric of :data:`METRICS`."""

    model: str
    label: str
    diffs: dict[str, PairedDifference]

    @property
    def n(self) -> int:
        return min(d.n for d in self.diffs.values())

    @property
    def standing(self) -> str:
        verdicts = [self.diffs[m].verdict for m in METRICS]
        if self.n == 0:
            return NO_DATA
        if self.n < 2:
            return ONE_SEED
        if all(v == HOLDS for v in verdicts):
            return BEATS
        if HOLDS in verdicts:
            return DISAGREE if REVERSED in verdicts else ONE_METRIC
        return WORSE if REVERSED in verdicts else NOISE

    def key(self) -> tuple[float, float]:
        return self.diffs[RANKED_BY].mean, self.diffs[METRICS[0]].mean

    def intervals(self) -> str:
        return ", ".join(f"{m} {self.diffs[m].text()}" for m in (RANKED_BY, *(x for x in METRICS if x != RANKED_BY)))

    def data(self) -> dict:
        return {"model": self.model, "label": self.label, "standing": self.standing,
                **{m: {"n": d.n, "mean": d.mean, "low": d.low, "high": d.high, "verdict": d.verdict}
                   for m, d in self.diffs.items()}}


@dataclass(frozen=True)
class Recommendation:
    """The outcome (:data:`RECOMMEND`, :data:`NONE`, :data:`ONE` or ``not run yet``), the
    recommended method (None unless :data:`RECOMMEND`) and every comparison, in the table's order."""

    outcome: str
    best: Comparison | None
    comparisons: tuple[Comparison, ...]

    @property
    def winners(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.standing == BEATS]

    def sentence(self, rerun: str) -> str:
        """The verdict, one paragraph of markdown; ``rerun``: the command with more seeds."""
        if self.outcome == RECOMMEND and self.best is not None:
            others = [c.label for c in self.winners if c is not self.best]
            also = (f" Also beyond noise: {', '.join(others)} (not ordered against {self.best.label}: the rule names "
                    f"the largest mean {RANKED_BY} gain)." if others else "")
            return (f"**Recommendation: {self.best.label}.** It beats plain softmax on all identities (ABCD) beyond "
                    f"noise; against ABCD (points, 95% interval): {self.best.intervals()}. Its configuration: "
                    f"`cells/{self.best.model}/seed0/config.yaml` beside this page (seed 0).{also}")
        if self.outcome == NONE:
            near = [f"{c.label} ({c.standing})" for c in self.comparisons if c.standing in (ONE_METRIC, DISAGREE)]
            told = f" Better on one metric only, so not recommended: {', '.join(near)}." if near else ""
            n = max(c.n for c in self.comparisons)
            return (f"**Recommendation: {NOTHING}.** No method's 95% interval against ABCD lies above 0 on both "
                    f"metrics with {n} seeds (the intervals below): train plain softmax on every identity "
                    f"(ABCD, `cells/{REFERENCE}/seed0/config.yaml` beside this page).{told} More seeds narrow the "
                    f"intervals (`{rerun}`; the finished seeds are kept).")
        if self.outcome == ONE:
            return ("**Nothing can be recommended with one seed**: there is no interval, so no difference below can "
                    f"be told from noise. Rerun with more seeds (`{rerun}`; the finished seed is kept).")
        return f"**Nothing can be recommended yet**: no method has a finished cell paired with ABCD (`{rerun}`)."

    def table(self) -> list[str]:
        lines = [f"| method | {' | '.join(f'{m} - ABCD' for m in METRICS)} | standing |",
                 "|---|" + "---:|" * len(METRICS) + "---|"]
        for c in self.comparisons:
            standing = f"**{c.standing}**" if c is self.best else c.standing
            lines.append(f"| {c.label} | {' | '.join(c.diffs[m].text() for m in METRICS)} | {standing} |")
        return lines

    def markdown(self, rerun: str) -> list[str]:
        """The page's last section."""
        return ["## Recommendation", "", self.sentence(rerun), "", *self.table(), "",
                "Differences in points (method - ABCD, same seed), 95% t-interval, n = paired seeds.", "", RULE]

    def data(self, rerun: str) -> dict:
        """The same as data (``study.json``'s ``recommendation``; fractions, nan as null)."""
        return {"outcome": self.outcome, "best": self.best.model if self.best else None,
                "best_label": self.best.label if self.best else None,
                "beats_abcd": [c.model for c in self.winners], "text": self.sentence(rerun),
                "reference": REFERENCE, "metrics": list(METRICS), "ranked_by": RANKED_BY, "rule": RULE,
                "methods": [c.data() for c in self.comparisons]}


def recommend(values: Values, rows: list[Method]) -> Recommendation:
    """The rule (module docstring) on per-seed values of the rows ``rows`` and of ABCD."""
    reference = values.get(REFERENCE, {})
    comparisons = tuple(
        Comparison(m.model, m.label, {metric: paired_difference(dict(values.get(m.model, {}).get(metric, {})),
                                                                dict(reference.get(metric, {})))
                                      for metric in METRICS})
        for m in rows if m.model != REFERENCE)
    if not any(c.n >= 2 for c in comparisons):
        return Recommendation(ONE if any(c.n == 1 for c in comparisons) else NO_DATA, None, comparisons)
    winners = [c for c in comparisons if c.standing == BEATS]
    if not winners:
        return Recommendation(NONE, None, comparisons)
    return Recommendation(RECOMMEND, max(winners, key=Comparison.key), comparisons)


def study_values(results: tables.Results, models: list[str]) -> dict[str, dict[str, dict[int, float]]]:
    """The per-seed values of ``models`` on :data:`METRICS`, read from the finished cells."""
    by_name = {m.name: m for m in tables.CLAIM_METRICS}
    return {model: {name: results.values(model, by_name[name]) for name in METRICS} for model in models}
