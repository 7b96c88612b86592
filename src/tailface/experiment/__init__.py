"""Experiments: one validated configuration (:class:`ExperimentConfig`), one runner
(:func:`run_experiment`) over a list of resumable stages. What a config runs is its *kind*
(:mod:`~tailface.experiment.kinds`); the baseline (:mod:`~tailface.experiment.baseline`) and
aggregate-and-disperse (:mod:`~tailface.experiment.method`) are the two registered kinds. This
package sits above ``train``, ``method`` and ``eval``; nothing below imports it."""

from tailface.experiment.config import ExperimentConfig
from tailface.experiment.kinds import ExperimentKind, KindBlock, kind_of, register_kind
from tailface.experiment.runner import RunResult, run_experiment

# the registered kinds: a new kind adds its module here (the baseline first: the default kind)
from tailface.experiment import baseline, method, sst
from tailface.experiment import subcenter_drop  # sub-center ArcFace's drop step and retraining

__all__ = ["ExperimentConfig", "ExperimentKind", "KindBlock", "RunResult", "kind_of", "register_kind",
           "run_experiment"]
