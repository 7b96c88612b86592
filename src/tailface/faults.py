"""Deterministic fault injection for the kill-and-resume tests (``tests/test_kill_resume.py``,
``scripts/soak.sh``).

``TAILFACE_TEST_KILL_AT=<point>:<count>`` makes the process kill itself with SIGKILL (no clean-up,
no ``finally``, as a preemption or the OOM killer would) the ``count``-th time (1-based) it reaches
the named point. Points (each a call of :func:`point`):

- ``stage.<name>``: a stage of :func:`tailface.experiment.stages.run_stages` is about to run
  (``stage.base``, ``stage.features``, ``stage.eval ours``, ...);
- ``step.<stage>``: a training step of that stage has just finished (``step.base``, ``step.train``);
- ``tmp-written.<file name>``: an atomic write (:mod:`tailface.atomic`) of that file has written
  and fsynced its temporary file and is about to rename it (``tmp-written.last.pt``,
  ``tmp-written.final.pt``, ``tmp-written.tail.npz``, ``tmp-written.metrics.json``, ...);
- ``features``: feature extraction has embedded one batch;
- ``cluster``: clustering is about to run k-means on one group's class means.

Unset (the normal case), :func:`point` is one dictionary lookup that returns at once.
"""

from __future__ import annotations

import os
import signal

ENV = "TAILFACE_TEST_KILL_AT"
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Kill this process here if ``TAILFACE_TEST_KILL_AT`` names ``name`` and this is its count-th hit."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, count = spec.rpartition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
