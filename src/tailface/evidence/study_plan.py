"""``tailface study``'s plan, said before any cell trains: the cells, the seeds and what they can
answer, the test set and its DIR resolution, and an estimate of the time
(:mod:`tailface.evidence.cost`; its seconds per cell feed the progress's ETA,
:mod:`tailface.evidence.progress`)::

    tailface study: plan: 8 models x 3 seeds = 24 cells (ab, sweep-C25, ..., ours): 0 finished, 24 to train
    tailface study: plan: 3 seeds: a difference is told from noise only when it exceeds 2.48 x ...
    tailface study: plan: test set: 69 held-out identities, 765 images; DIR@FAR=1% over 610 genuine ...
    tailface study: plan: estimated 40.1 min for the 24 cells to train (1 at once): ...
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tailface.data.training_set import training_set
from tailface.evidence import cells
from tailface.evidence.cells import Profile
from tailface.evidence.cost import cell_work, measure_rate
from tailface.evidence.parallel import Cell, threads_per_job
from tailface.evidence.progress import duration
from tailface.evidence.reproduce import cell_experiment
from tailface.evidence.stats import interval_factor
from tailface.evidence.study_data import StudyData
from tailface.experiment.stages import say

DEFAULT_SEEDS = 3  # the fewest seeds whose 95% interval can exclude 0 in practice (2 seeds: +- 9 sd)


def seeds_outlook(seeds: int) -> str:
    """What ``seeds`` seeds can answer (the verdicts of :mod:`tailface.evidence.stats`)."""
    if seeds < 2:
        return (f"ONE SEED CANNOT ORDER ANYTHING: with --seeds 1 every answer will be 'cannot be told with one "
                f"seed' (no interval: the page shows the numbers only). --seeds {DEFAULT_SEEDS} (the default) gives "
                "95% intervals; a rerun with more seeds and the same --out keeps the finished ones")
    text = (f"{seeds} seeds: a difference is told from noise (its 95% t-interval clear of 0) only when its mean "
            f"exceeds {interval_factor(seeds):.2f} x the seed-to-seed standard deviation of that difference "
            f"({seeds + 2} seeds: {interval_factor(seeds + 2):.2f} x)")
    if seeds == 2:
        finer = interval_factor(2) / interval_factor(DEFAULT_SEEDS)
        text += f"; with 2 seeds that rarely happens: --seeds {DEFAULT_SEEDS} (the default) resolves {finer:.1f}x finer"
    return text


def test_outlook(data: StudyData) -> str:
    test = data.test
    return (f"test set: {test.identities:,} held-out identities, {test.images:,} images; "
            f"{test.resolution.text()}")


def plan_hook(profile: Profile, out: Path, spec: str, data: StudyData, models: list[str], seeds: int,
              jobs: int) -> Callable[[list[Cell], list[Cell]], dict[Cell, float] | None]:
    """The :class:`~tailface.evidence.reproduce.Invocation` hook that says the plan once the cells
    are planned (before any trains) and returns each cell's estimated seconds."""

    def plan(todo: list[Cell], finished: list[Cell]) -> dict[Cell, float] | None:
        def tell(message: str) -> None:
            say("plan", message, "study")

        tell(f"{len(models)} models x {seeds} seed{'s' * (seeds > 1)} = {len(models) * seeds} cells "
             f"({', '.join(models)}): {len(finished)} finished, {len(todo)} to train")
        tell(seeds_outlook(seeds))
        tell(test_outlook(data))
        if not todo:
            return None
        _, ab = cell_experiment(profile, out, spec, None, "ab", 0)
        rate = measure_rate(ab, training_set(data.pool, ab.data), threads_per_job(jobs))
        work = {(m, s): cell_work(cells.cell_config(profile, m, s, out, spec), data.pool, data.test.images,
                                  f"{m} seed {s}") for m, s in todo}
        seconds = {cell: w.seconds(rate) for cell, w in work.items()}
        passes = sum(w.passes for w in work.values())
        tell(f"estimated {duration(sum(seconds.values()) / jobs)} for the {len(todo)} cells to train ({jobs} at "
             f"once): {passes:,} training image passes (each cell's epochs x its training images) at the measured "
             f"{rate.text()}, plus {data.test.images:,} held-out images evaluated per cell (compute only: "
             "checkpoints, clustering and start-up not counted); the ETA below is corrected as cells finish")
        return seconds

    return plan
