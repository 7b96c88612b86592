"""Several cells at once (``tailface reproduce --jobs N``, ``tailface study --jobs N``).

A small CPU network does not keep two cores busy from one process (intra-op threads on 32x32
convolutions and the data loader's hand-offs leave them idle), so on the 2-core development
machine two one-thread cells at once finish Table 2 1.28x as fast as one two-thread cell at a
time (``benchmarks/bench_cells_at_once.py``, docs/benchmarks.md). Each cell runs in its own
spawned process with its share of the torch threads (:func:`threads_per_job`), its output in
``LOGS/<model>-seed<k>.log``; a cell starts once the cells it depends on (the method's base
model, same seed) are finished, in the order given (seed 0 of every model first). Cells are
resumable, so when one fails the others are stopped and the error is raised: rerunning the
command continues where each cell stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path

import torch

from tailface.errors import ConfigError, TailfaceError, WorkerFailed

Cell = tuple[str, int]  # (model, seed)


def threads_per_job(jobs: int) -> int:
    """This process's torch threads (the cores, or ``OMP_NUM_THREADS``) shared out among the jobs."""
    return max(1, torch.get_num_threads() // jobs)


def run_cells(todo: list[Cell], jobs: int, train: Callable[[str, int], None],
              dependencies: Callable[[str], list[str]], logs: Path, say: Callable[[str, str], None],
              started: Callable[[Cell], None] | None = None,
              finished_cell: Callable[[Cell], None] | None = None) -> None:
    """Call ``train(model, seed)`` for every cell of ``todo``, ``jobs`` of them at once.
    ``train`` must be picklable (a module-level function or a ``functools.partial`` of one).
    ``started(cell)`` / ``finished_cell(cell)``: called in this process as each cell starts and
    ends (progress across cells: :class:`tailface.evidence.progress.CellProgress`)."""
    def note(hook: Callable[[Cell], None] | None, cell: Cell) -> None:
        if hook is not None:
            hook(cell)

    if jobs <= 1:
        for cell in todo:
            note(started, cell)
            train(*cell)
            note(finished_cell, cell)
        return
    logs.mkdir(parents=True, exist_ok=True)
    waiting, finished = list(todo), set()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    start_method = multiprocessing.get_start_method()  # what the cell's data loader workers would use with --jobs 1
    running: dict[Cell, tuple[multiprocessing.process.BaseProcess, Path]] = {}
    errors = context.SimpleQueue()  # (cell, message) of a cell that failed on bad input
    messages: dict[Cell, str] = {}

    def ready(cell: Cell) -> bool:  # its base models are done, or not part of this run
        model, seed = cell
        return all((d, seed) in finished or (d, seed) not in todo for d in dependencies(model))

    try:
        while waiting or running:
            for cell in [c for c in waiting if ready(c)][:jobs - len(running)]:
                log = logs / f"{cell[0]}-seed{cell[1]}.log"
                child = context.Process(target=_train_logged, name=f"{cell[0]} seed {cell[1]}",
                                        args=(train, cell, log, threads_per_job(jobs), start_method, os.getpid(),
                                              errors))
                child.start()
                running[cell] = (child, log)
                waiting.remove(cell)
                say(f"{cell[0]} seed {cell[1]}", f"started (log: {log})")
                note(started, cell)
            if not running:  # nothing can start: a dependency cycle, which cells.dependencies never makes
                raise ConfigError(f"cells {waiting} wait on each other")
            wait([process.sentinel for process, _ in running.values()])
            for cell, (process, log) in list(running.items()):
                if process.exitcode is None:
                    continue
                del running[cell]
                if process.exitcode != 0:
                    while not errors.empty():
                        failed, message = errors.get()
                        messages[tuple(failed)] = message
                    text = (f"{cell[0]} seed {cell[1]} failed: {messages.get(cell) or _death(process.exitcode)} "
                            f"(its output: {log}); the other cells were stopped: rerun the same command to resume them")
                    raise ConfigError(text) if cell in messages else WorkerFailed(text)
                finished.add(cell)
                say(f"{cell[0]} seed {cell[1]}", "finished")
                note(finished_cell, cell)
    finally:
        for process, _ in running.values():
            process.terminate()
        for process, _ in running.values():
            process.join()


def _death(exitcode: int) -> str:
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _exit_with(parent: int) -> None:
    """End this process when ``parent`` is gone (killed with SIGKILL, it stops nothing): else a rerun
    of the command would train this same cell a second time, at once, into the same folder."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent watch").start()


def _train_logged(train: Callable[[str, int], None], cell: Cell, log: Path, threads: int, start_method: str,
                  parent: int, errors) -> None:
    _exit_with(parent)

    torch.set_num_threads(threads)
    # a spawned child inherits "spawn" as its default: its data loader would then start every worker as a
    # fresh interpreter at every epoch (measured: 3-4x slower cells); use the parent's method instead
    multiprocessing.set_start_method(start_method, force=True)
    with open(log, "a") as sink:
        os.dup2(sink.fileno(), 1)  # the cell's progress bars and messages go to its log, not the terminal
        os.dup2(sink.fileno(), 2)
        try:
            train(*cell)
        except TailfaceError as error:  # bad input: its message is the answer
            errors.put((cell, str(error)))
            raise SystemExit(2) from None
        except BaseException:
            traceback.print_exc()  # into the log; the parent names the log
            raise SystemExit(1) from None
