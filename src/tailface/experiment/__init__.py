"""Experiments: one validated configuration (:class:`ExperimentConfig`), one runner
(:func:`run_experiment`) over a list of resumable stages. Baselines and the method are stage lists
(:mod:`~tailface.experiment.baseline`, :mod:`~tailface.experiment.method`). This package sits above
``train``, ``method`` and ``eval``; nothing below imports it."""

from tailface.experiment.config import ExperimentConfig
from tailface.experiment.runner import RunResult, run_experiment

__all__ = ["ExperimentConfig", "RunResult", "run_experiment"]
