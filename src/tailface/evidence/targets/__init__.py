"""Reproduce targets as a registry (see :mod:`tailface.evidence.targets.registry`).

One file per target; the imports below are the registrations (their order is the order of
``tailface reproduce all`` and of the command line's help)."""

from tailface.evidence.targets.registry import (Claim, Inputs, Report, Target, get_target, parse_names,
                                                register_target, target_names)
from tailface.evidence.targets import table1, fig1, table2, fig2, table3, table4, fig3  # noqa: F401  (the paper's)
from tailface.evidence.targets import sweep, tune, probes, superclasses  # noqa: F401  (ours: premise, tuning, method)
from tailface.evidence.targets import losses  # noqa: F401  (class-count-aware losses)
from tailface.evidence.targets import regimes  # noqa: F401  (where the tail hurts: perturbed training sets)
from tailface.evidence.targets import methods, shallow  # noqa: F401  (issue 21: the methods, the shallow set)

__all__ = ["Claim", "Inputs", "Report", "Target", "get_target", "parse_names", "register_target", "target_names"]
