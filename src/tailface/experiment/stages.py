"""The stage abstraction: an experiment is a list of stages run in order, each in its own folder.

A stage is done when its output file exists (every stage writes that file last, atomically), and
is then skipped; a training stage that was interrupted resumes from its ``last.pt`` (the
trainer's resume). Stages that only derive a summary from other stages' outputs (evaluation, row
norms, the report) are ``derived``: they are redone when an output they read is newer than theirs.
Every stage logs through :func:`say`, in one format: ``tailface <command>: <stage>: <message>``.

Fingerprints (:mod:`tailface.fingerprints`): a stage with ``fingerprints`` (a callable giving the
prints of everything it reads: data, config blocks, earlier stages' files) keeps them in
``<output stem>.inputs.json`` beside its output, written before it runs, and is reused only on a
full match (``run_stages(common=...)`` adds the prints every stage shares). On a change a stage is
redone, unless it holds work (``keeps_work``: a training stage's ``final.pt`` or ``last.pt``): then
a ConfigError names what changed and the flag that keeps the work (``accept_changed``). An output
without a record (a folder written before fingerprints) is "unknown": one warning line, kept (a
derived stage still follows the modification-time rule), and the current inputs are recorded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist

from tailface import faults
from tailface.errors import ConfigError
from tailface.fingerprints import ACCEPT_FLAG, compare, read_record, record_path, summary, write_record


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
    fingerprints: Callable[[], dict[str, dict]] | None = None  # prints of its inputs (None: not recorded)
    keeps_work: bool = False  # its output is work (training): refuse to redo it on a change
    partial: Path | None = None  # the file an interrupted run leaves (last.pt): work too

    @property
    def record(self) -> Path:
        return record_path(self.output)

    def is_done(self) -> bool:
        if not self.output.is_file():
            return False
        if not self.derived:
            return True
        mtime = self.output.stat().st_mtime_ns
        return all(not p.is_file() or p.stat().st_mtime_ns <= mtime for p in self.inputs)


def _reuse(stage: Stage, common: dict[str, dict], accept_changed: bool, command: str) -> bool:
    """Whether ``stage``'s output is reused; records the inputs it runs (or is kept) with (module
    docstring). Raises ConfigError when work made from other inputs would be redone."""
    if stage.fingerprints is None:
        return stage.is_done()
    current = {**common, **stage.fingerprints()}
    started = stage.partial is not None and stage.partial.is_file()
    main = is_main_process()
    if not stage.output.is_file() and not started:
        if main:
            write_record(stage.record, current)
        return False
    made = stage.output if stage.output.is_file() or stage.partial is None else stage.partial
    found = compare(read_record(stage.record), current)
    if found.same and not found.unknown:
        return stage.output.is_file()
    if found.same:  # no record (written before fingerprints), or inputs it does not know
        reuse = stage.is_done() if stage.output.is_file() else False  # a derived stage: the old rule
        if reuse or not stage.output.is_file():
            what = "no record of its inputs" if len(found.unknown) == len(current) else \
                f"no record of its inputs {', '.join(found.unknown)}"
            say(stage.name, f"WARNING: {made}: {what} (written before tailface recorded them): unknown, taken as "
                            "the current ones", command)
    elif stage.keeps_work and not accept_changed:
        raise ConfigError(f"{made}: made from other inputs than now ({summary(found.changed)}); to keep it and go "
                          f"on: {ACCEPT_FLAG}; to redo it: delete {made.parent} (or use another --out)")
    elif stage.keeps_work:
        say(stage.name, f"WARNING: {made}: made from other inputs ({summary(found.changed)}); kept ({ACCEPT_FLAG})",
            command)
        reuse = stage.output.is_file()
    else:
        say(stage.name, f"inputs changed ({summary(found.changed)}): redone", command)
        reuse = False
    if main:
        if not reuse and not stage.keeps_work:
            stage.output.unlink(missing_ok=True)  # stale: never reused, even if this run stops early
        write_record(stage.record, current)
    return reuse


def run_stages(stages: list[Stage], command: str = "run", common: dict[str, dict] | None = None,
               accept_changed: bool = False) -> dict[str, Path]:
    """Run every stage that is not done (``common``: prints every stage's record holds, e.g. the
    training data's; ``accept_changed``: keep work made from other inputs); returns ``{stage
    name: output path}``."""
    done: dict[str, Path] = {}
    for stage in stages:
        if is_main_process() or not stage.main_only:
            if _reuse(stage, common or {}, accept_changed, command):
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
