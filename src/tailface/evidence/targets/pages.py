"""The page of a target that is a model table and its claims (Tables 2-4, the losses)."""

from __future__ import annotations

from collections.abc import Iterable

from tailface.evidence.tables import VERDICT_NOTE, claim_numbers, claims_table, model_numbers, model_table
from tailface.evidence.targets.registry import Inputs, Report, Target


def claims_page(target: Target, inputs: Inputs, shown: Iterable[str] | None = None, preamble: str | None = None,
                source: str = "paper") -> Report:
    """A target that is a model table and its claims: [``preamble``,] the table of ``shown`` (default:
    the target's models), the claims table and the verdicts' note."""
    results = inputs.results
    models = list(shown if shown is not None else target.models)
    parts = [preamble, ""] if preamble else []
    parts += [model_table(results, models), "", "## Claims", "", claims_table(results, target.claims, source), "",
              VERDICT_NOTE]
    return Report("\n".join(parts), {"models": model_numbers(results, models),
                                     "claims": claim_numbers(results, target.claims)})
