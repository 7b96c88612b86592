"""``tailface reproduce NAME``: the paper's tables and figures on one profile, with seeds.

Every cell (model x seed, :mod:`tailface.evidence.cells`) that the targets
(:mod:`tailface.evidence.targets`) need is run through the one runner, seed by seed (seed 0 of
every model first, so that a first complete table exists early; with ``--jobs N``, N cells at
once); finished cells are skipped, an interrupted one resumes, and ``--seeds 3`` after
``--seeds 1`` trains only seeds 1 and 2. Then each requested target writes ``OUT/<name>.md`` (its
page) and ``OUT/<name>.json`` (the numbers the page shows, and how they were made), atomically;
a page is always rewritten from the cells, so it never shows a half-finished cell as finished.
With ``--archive DIR`` each finished cell's small records are kept in DIR too (for git), and a
cell archived there is neither retrained nor missing from the pages (:mod:`tailface.evidence.archive`).
A regime cell (``ab@split``, :mod:`tailface.evidence.regimes`) trains on its regime's perturbed
set, built once per regime and seed before any cell starts.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tailface.atomic import write_text
from tailface.data.groups import GroupThresholds
from tailface.data.perturb.manifest import MANIFEST_NAME
from tailface.data.training_set import open_pool
from tailface.errors import ConfigError
from tailface.evidence import cells, parallel, regimes, tables
from tailface.evidence.archive import Archive, check_data, data_record, fingerprint
from tailface.evidence.cells import Profile
from tailface.evidence.progress import Cell, CellProgress
from tailface.evidence.targets import Inputs, Report, Target, get_target
from tailface.experiment import ExperimentConfig, run_experiment
from tailface.experiment.config import DataConfig
from tailface.experiment.stages import say
from tailface.fingerprints import dataset_print
from tailface.locks import hold
from tailface.provenance import claim_output_folder, run_record


@dataclass(frozen=True)
class Invocation:
    """Which command runs the cells and writes the pages: ``tailface reproduce`` (the default) or
    ``tailface study`` (:mod:`tailface.evidence.study`)."""

    verb: str = "reproduce"  # log lines ``tailface <verb>: ...``, and the command the cells' runs name
    command: str | None = None  # the command line that rewrites every page; None: ``tailface reproduce <target> ...``
    paper_note: bool = True  # the page header's sentence on the paper's setup and our proxies of it
    # called once the cells are planned, before any trains, with the cells to train and the finished ones;
    # returns each cell's estimated seconds (the progress's ETA) or None
    before_training: Callable[[list[Cell], list[Cell]], dict[Cell, float] | None] | None = None
    # models trained besides the targets' (and their base models), after them: ``tailface study --methods``
    also: tuple[str, ...] = ()


REPRODUCE = Invocation()


def needed_models(names: list[str], also: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The cells' models of the targets ``names``, then the models ``also``, in training order (base
    models first, each once)."""
    order: list[str] = []
    for model in [*(model for name in names for model in get_target(name).models), *also]:
        for m in [*cells.dependencies(model), model]:
            if m not in order:
                order.append(m)
    return order


def cell_experiment(profile: Profile, root: Path, data: str | None, sizes, model: str, seed: int):
    """The cell's folder and its :class:`~tailface.experiment.ExperimentConfig`."""
    doc = cells.cell_config(profile, model, seed, root, data, sizes if model in cells.FIG3_MODELS else None)
    return cells.cell_dir(root, model, seed), ExperimentConfig.from_dict(doc, f"{model} seed {seed}")


def finished(profile: Profile, root: Path, data: str | None, sizes, model: str, seed: int,
             data_print: dict | None = None, accept_changed: bool = False, unknown: list | None = None,
             *, verb: str = "reproduce") -> bool:
    """Whether the cell is trained and evaluated, with the current settings: a finished cell trained
    with other settings (e.g. before a shipped config was retuned) is refused with its folder named,
    and so is one trained on other data than ``data_print`` (its ``cell.json``'s ``data``;
    ``accept_changed``: kept, the record updated; a record without it: appended to ``unknown``).
    Cheap for a cell not finished (its config, which may name a base model not trained yet, is not
    built)."""
    if not (cells.metrics_path(root, model, seed).is_file() and cells.final_checkpoint(root, model, seed).is_file()):
        return False
    out, cfg = cell_experiment(profile, root, data, sizes, model, seed)
    claim_output_folder(out, cfg.to_dict())
    record = out / "cell.json"
    doc = json.loads(record.read_text()) if record.is_file() else {}
    found = check_data(doc, data_print, record, f"{model} seed {seed}",
                       f"delete {out} to train it again, use another --out", accept_changed)
    if found == "unknown" and unknown is not None:
        unknown.append(record)
    if found == "accepted" and doc:
        write_text(record, json.dumps({**doc, "data": data_print}, indent=1))
        say(f"{model} seed {seed}", "WARNING: trained on other data than this run's; kept (--accept-changed-inputs)",
            verb)
    say(f"{model} seed {seed}", f"done ({out}), skipped", verb)
    return True


def cell_fingerprint(profile: Profile, root: Path, data: str | None, sizes, model: str, seed: int) -> str:
    """The cell's configuration fingerprint (:func:`tailface.evidence.archive.fingerprint`), from its
    config document: cheap, and valid before its base model is trained."""
    doc = cells.cell_config(profile, model, seed, root, data, sizes if model in cells.FIG3_MODELS else None)
    return fingerprint(doc, root, regimes.perturbation(model, seed))


def perturbed_data(profile: Profile, root: Path, data: str | None, model: str, seed: int) -> Path | None:
    """The perturbed set a regime cell trains on, built once (:func:`tailface.evidence.regimes.build`)
    from the clean cells' data; None for a cell of the unperturbed set."""
    _, regime = regimes.parse(model)
    if not regime.perturbed:
        return None
    shared = shared_data(profile, data or profile.data_spec())
    return regimes.build(root, regime, seed, shared.train, shared.options, shared.groups)


def archive_cell(root: Path, store: Archive, model: str, seed: int, config_sha256: str) -> None:
    """Copy a finished cell's records into the archive (those it lacks): its metrics, its split
    reunion (written first when due), its regime's manifest, then its ``cell.json`` with the fingerprint."""
    cell = cells.cell_dir(root, model, seed)
    reunion = cell / regimes.REUNION
    if regimes.reunion_due(model) and not reunion.is_file():
        regimes.write_reunion(cell, root, model, seed)
    files = [cells.metrics_path(root, model, seed), reunion]
    _, regime = regimes.parse(model)
    if regime.perturbed:
        files.append(regimes.manifest_path(root, regime.name, seed))
    record = json.loads((cell / "cell.json").read_text()) if (cell / "cell.json").is_file() else {}
    store.keep(root, [f.relative_to(root).as_posix() for f in files if f.is_file()],
               (cell / "cell.json").relative_to(root).as_posix(), {**record, "config_sha256": config_sha256})


def run_cell(profile: Profile, root: Path, data: str | None, sizes, jobs: int, model: str, seed: int,
             archive: Path | None = None, *, data_print: dict | None = None, accept_changed: bool = False,
             verb: str = "reproduce") -> None:
    """Train and evaluate one cell (unless finished), then write its ``cell.json``: who trained it,
    its configuration's fingerprint and ``data`` (``data_print``: the training data's print)."""
    if finished(profile, root, data, sizes, model, seed, data_print, accept_changed, verb=verb):
        return
    out, cfg = cell_experiment(profile, root, data, sizes, model, seed)
    claim_output_folder(out, cfg.to_dict())  # an interrupted cell trained with other settings is refused too
    perturbed_data(profile, root, data, model, seed)
    say(f"{model} seed {seed}", f"-> {out}", verb)
    start = time.time()
    run_experiment(cfg, out, verb, **({"accept_changed": True} if accept_changed else {}))
    record = out / "cell.json"
    earlier = json.loads(record.read_text()) if record.is_file() else {}
    info = {**run_record(), "profile": profile.name, "cells_at_once": jobs,
            "invocations": int(earlier.get("invocations", 0)) + 1,
            "wall_s": round(float(earlier.get("wall_s", 0.0)) + time.time() - start, 1),  # summed over resumes
            "config_sha256": cell_fingerprint(profile, root, data, sizes, model, seed)}
    if data_print is not None:
        info["data"] = data_print  # what it was trained on (tailface.fingerprints; archive.check_data)
    if (regime := regimes.record(root, model, seed)) is not None:
        info["regime"] = regime  # its perturbation and the manifest of the set it trained on
    write_text(record, json.dumps(info, indent=1))
    regimes.write_reunion(out, root, model, seed)
    if archive is not None:
        archive_cell(root, Archive(archive), model, seed, info["config_sha256"])


def plan_cells(profile: Profile, root: Path, data: str | None, sizes, models: list[str], seeds: int,
               store: Archive | None, data_print: dict | None = None,
               accept_changed: bool = False, *, verb: str = "reproduce"
               ) -> tuple[dict[parallel.Cell, str], set[parallel.Cell]]:
    """Each cell's state, seed 0 of every model first: ``done`` (finished in ROOT; copied into the
    archive if it lacks it), ``archived`` (in the archive with this configuration and, when its
    record says, this data ``data_print``: skipped) or ``train``; and the archived cells to train
    again because a cell to train starts from them. Records written before dataset fingerprints are
    taken as trained on this run's data, said in one warning line."""
    state: dict[parallel.Cell, str] = {}
    unknown: list[Path] = []
    for seed in range(seeds):
        for model in models:
            done = finished(profile, root, data, sizes, model, seed, data_print, accept_changed, unknown, verb=verb)
            state[(model, seed)] = "done" if done else "train"
            if store is None:
                continue
            config_sha256 = cell_fingerprint(profile, root, data, sizes, model, seed)
            archived = store.holds(model, seed, config_sha256, cells.cell_dir(root, model, seed), data_print,
                                   accept_changed, unknown if not done else None)  # refuses another
            if done:
                archive_cell(root, store, model, seed, config_sha256)
            elif archived:
                state[(model, seed)] = "archived"
                say(f"{model} seed {seed}", f"archived ({store.cell(model, seed)}), skipped", verb)
    if unknown:
        say("cells", f"WARNING: {len(unknown)} cell records hold no fingerprint of their training data (written "
                     f"before tailface recorded one, e.g. {unknown[0]}): unknown, taken as this run's data",
            verb)
    again: set[parallel.Cell] = set()
    for model, seed in reversed(list(state)):  # dependents before their base models
        if state[(model, seed)] == "train" or (model, seed) in again:
            for base in cells.dependencies(model):
                if state.get((base, seed)) == "archived" and (base, seed) not in again:
                    again.add((base, seed))
                    say(f"{base} seed {seed}", f"archived, but {model} starts from its checkpoint, which the "
                        "archive does not keep: trained again", verb)
    return state, again


def cell_records(out: Path, models: tuple[str, ...] | list[str], seeds: int, archive: Path | None = None) -> list[dict]:
    """The ``cell.json`` of every finished cell of ``models`` at seeds ``0..seeds-1`` (from the
    archive where the run folder lacks it)."""
    found = ((cells.cell_dir(out, m, s) / "cell.json", cells.cell_dir(archive, m, s) / "cell.json" if archive else None)
             for m in models for s in range(seeds))
    return [json.loads(p.read_text()) for here, there in found
            if (p := here if here.is_file() else there) is not None and p.is_file()]


def training_setup(records: list[dict]) -> str:
    """How the cells were trained, from their ``cell.json``: threads, cells at once (cells before ``--jobs``
    existed ran one at a time) and the commits that trained them, oldest first."""
    if not records:
        return ""

    def span(values: set) -> str:
        return str(min(values)) if len(values) == 1 else f"{min(values)}-{max(values)}"

    threads = {r["threads"] for r in records if "threads" in r}
    at_once = {r.get("cells_at_once", 1) for r in records}
    commits = list(dict.fromkeys(r["commit"] for r in sorted(records, key=lambda r: r["date"])))  # oldest first
    return (f"; {len(records)} cells, {span(threads)} torch thread(s) each, {span(at_once)} at once, trained at "
            f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}")


def shared_data(profile: Profile, spec: str) -> DataConfig:
    """The data every cell of ``profile`` shares (the spec, its groups and options, a study's
    held-out identities) as a :class:`~tailface.experiment.config.DataConfig`."""
    block = cells.merged(profile.baseline("ab"), profile.overrides)["data"]
    return DataConfig(train=spec, groups=GroupThresholds(**(block.get("groups") or {})),
                      options=dict(block.get("options") or {}), holdout=dict(block.get("holdout") or {}))


def reproduce(names: list[str], profile: Profile, seeds: int, out: Path, data: str | None = None,
              train: bool = True, only: list[str] | None = None, jobs: int = 1,
              archive: Path | None = None, accept_changed: bool = False,
              invocation: Invocation = REPRODUCE) -> dict[str, Report]:
    """:func:`_reproduce` holding OUT's lock (:mod:`tailface.locks`) when it trains: a second
    process training into OUT is refused; ``--report-only`` (pages only, written atomically) may
    run beside a campaign. Each cell holds its own folder's lock (``run_experiment``).
    ``accept_changed`` (``--accept-changed-inputs``): keep cells (and their stages) trained on other
    data or inputs than now instead of stopping (:mod:`tailface.fingerprints`). ``invocation``: the
    command that runs (its log lines, its pages' header, its plan before training)."""
    with hold(out, invocation.verb) if train else nullcontext():
        return _reproduce(names, profile, seeds, out, data, train, only, jobs, archive, accept_changed, invocation)


def _reproduce(names: list[str], profile: Profile, seeds: int, out: Path, data: str | None = None,
               train: bool = True, only: list[str] | None = None, jobs: int = 1,
               archive: Path | None = None, accept_changed: bool = False,
               invocation: Invocation = REPRODUCE) -> dict[str, Report]:
    """Run the cells the targets ``names`` need (unless ``train`` is false: then only the pages are
    written, from the cells finished so far; with ``only``, just those models and their base
    models; ``jobs`` cells at once, :mod:`tailface.evidence.parallel`; with ``archive``, cells kept
    in and read from that folder, :mod:`tailface.evidence.archive`), write ``OUT/<name>.md`` and
    ``OUT/<name>.json`` for each target, and return each target's :class:`Report`."""
    targets = [get_target(name) for name in names]
    out.mkdir(parents=True, exist_ok=True)
    spec = data or profile.data_spec()
    shared = shared_data(profile, spec)
    faceset = open_pool(shared)  # the training set as the cells see it (without a study's held-out identities)
    models = needed_models(names, invocation.also)
    sizes = cells.fig3_sizes(faceset, shared.groups) if set(models) & set(cells.FIG3_MODELS) else None
    if only is not None:
        unknown = sorted(set(only) - set(models))
        if unknown:
            raise ConfigError(f"--only {','.join(unknown)}: not a model of {','.join(names)} "
                              f"(its models: {', '.join(models)})")
        wanted = {m for model in only for m in [*cells.dependencies(model), model]}
        models = [m for m in models if m in wanted]
    start = time.time()
    store = Archive(archive) if archive is not None else None
    data_print = data_record(spec, dataset_print(spec, faceset), out) if train else None  # cell.json's data
    verb = invocation.verb
    state, again = plan_cells(profile, out, spec, sizes, models, seeds if train else 0, store, data_print,
                              accept_changed, verb=verb)
    todo = [cell for cell, what in state.items() if what == "train" or cell in again]
    estimate = (invocation.before_training(todo, [cell for cell in state if cell not in todo])
                if invocation.before_training is not None and train else None)
    progress = CellProgress(todo, lambda cell, msg: say(cell, msg, verb), estimate, jobs)
    for model, seed in todo:  # each perturbed set built here, once, before any cell (process) reads it
        folder = perturbed_data(profile, out, spec, model, seed)
        if folder is not None and store is not None:
            store.keep(out, [(folder / MANIFEST_NAME).relative_to(out).as_posix()])
    parallel.run_cells(todo, jobs, partial(run_cell, profile, out, spec, sizes, jobs, archive=archive,
                                           data_print=data_print, accept_changed=accept_changed, verb=verb),
                       cells.dependencies, out / "logs", lambda cell, msg: say(cell, msg, verb),
                       progress.started, progress.finished)
    for model, seed in [cell for cell, what in state.items() if what == "done"] + sorted(again):
        differ = store.differences(out, model, seed) if store is not None else []
        if differ:  # trained again for a dependent (or archived from another run): the figures should be equal
            say(f"{model} seed {seed}", f"WARNING: its figures differ from the archived ones "
                f"({store.cell(model, seed) if store else ''}): {'; '.join(differ)}. The pages read the run "
                f"folder's; the archive keeps its own (delete that folder to archive these)", verb)
    inputs = Inputs(tables.Results(out, list(range(seeds)), archive), faceset, shared.groups, out)
    info = run_record()
    return {target.name: write_target(target, inputs, profile, spec, info, start, invocation) for target in targets}


def write_target(target: Target, inputs: Inputs, profile: Profile, spec: str, info: dict, start: float,
                 invocation: Invocation = REPRODUCE) -> Report:
    """``OUT/<name>.md``: the title, how the page was made (the command that rewrites it, data, seeds,
    code, machine, the cells' training) and the writer's body; ``OUT/<name>.json``: the same facts
    and the numbers."""
    report = target.write(target, inputs)
    out, seeds = inputs.out, len(inputs.results.seeds)
    archive = inputs.results.archive
    records = cell_records(out, target.models, seeds, archive)
    walls = [r.get("wall_s", 0) for r in records]
    command = invocation.command or (f"tailface reproduce {target.name} --profile {profile.name} --seeds {seeds} "
                                     f"--out {out}" + (f" --archive {archive}" if archive is not None else ""))
    paper = (" Paper: ResNet-34, 1.1M MS-Celeb-1M images, MegaFace with 1M distractors; ours: MegaFace-style proxy "
             "on LFW (docs/evaluation.md)." if invocation.paper_note else "")
    header = [f"# {target.title}", "",
              f"`{command}` "
              f"(profile: {profile.description}). Data: `{spec}`. Seeds 0..{seeds - 1}. Written {info['date']} at "
              f"commit {info['commit']} on {info['machine']}, {info['cpus']} CPUs, torch {info['torch']}, "
              f"{info['threads']} threads{', GPU ' + info['cuda'] if info['cuda'] else ''}. Training wall time "
              f"of its cells: {sum(walls) / 60:.1f} min in all (this invocation: {(time.time() - start) / 60:.1f} "
              f"min){training_setup(records)}.{paper}", ""]
    facts = {"target": target.name, "title": target.title, "command": command,
             "profile": {"name": profile.name, "description": profile.description}, "data": spec,
             "seeds": list(inputs.results.seeds), "written": info,
             "cells": {"models": list(target.models), "finished": len(records), "training_wall_s": sum(walls)},
             "units": "metric values are fractions (the page shows percent); paper_percent in percent"}
    write_text(out / f"{target.name}.json", json.dumps(plain({**facts, **report.data}), indent=1,
                                                       allow_nan=False) + "\n")
    write_text(out / f"{target.name}.md", "\n".join(header + [report.markdown, ""]))
    return report


def plain(value: Any) -> Any:
    """``value`` with JSON types only: nan and infinities as None, tuples as lists, numpy scalars as numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
