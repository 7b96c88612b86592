"""The stage abstraction: an experiment is a list of stages run in order, each in its own folder.

A stage is done when its output file exists (every stage writes that file last, atomically), and
is then skipped; a training stage that was interrupted resumes from its ``last.pt`` (the
trainer's resume). Stages that only derive a summary from other stages' outputs (evaluation, row
norms, the report) are ``derived``: they are redone when an output they read is newer than theirs.
Every stage logs through :func:`say`, in one format: ``tailface <command>: <stage>: <message>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist

from tailface import faults


def is_main_process() -> bool:
    """Rank 0 under torchrun (or a single process): the one that writes and evaluates."""
    return os.environ.get("RANK", "0") == "0"


def say(stage: str, msg: str, command: str = "run") -> None:
    if is_main_process():
        print(f"tailface {command}: {stage}: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Stage:
    name: str
    output: Path  # the file that marks the stage done
    run: Callable[[], object]  # does the work; writes ``output`` last
    inputs: tuple[Path, ...] = ()  # outputs of earlier stages that this one reads
    derived: bool = False  # redo when an input is newer than the output
    main_only: bool = False  # only rank 0 runs it (features, clustering, evaluation); the others wait

    def is_done(self) -> bool:
        if not self.output.is_file():
            return False
        if not self.derived:
            return True
        mtime = self.output.stat().st_mtime_ns
        return all(not p.is_file() or p.stat().st_mtime_ns <= mtime for p in self.inputs)


def run_stages(stages: list[Stage], command: str = "run") -> dict[str, Path]:
    """Run every stage that is not done; returns ``{stage name: output path}``."""
    done: dict[str, Path] = {}
    for stage in stages:
        if is_main_process() or not stage.main_only:
            if stage.is_done():
                say(stage.name, f"done ({stage.output}), skipped", command)
            else:
                faults.point(f"stage.{stage.name}")
                stage.run()
        if stage.main_only:
            _barrier()  # the other ranks wait for rank 0's output
        done[stage.name] = stage.output
    return done


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
