"""``tailface reproduce NAME``: the paper's tables and figures on one profile, with seeds.

Every needed cell (model x seed, :mod:`tailface.evidence.cells`) is run through the one runner,
seed by seed (seed 0 of every model first, so that a first complete table exists early; with
``--jobs N``, N cells at once); finished cells are skipped, an interrupted one resumes, and
``--seeds 3`` after ``--seeds 1`` trains only seeds 1 and 2. Then ``OUT/<name>.md`` is written
for each requested table (atomically; a table is always rewritten from the cells, so it never
shows a half-finished cell as finished).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from tailface.errors import ConfigError
from tailface.evidence import cells, parallel, tables
from tailface.evidence.cells import Profile

NAMES = ("table1", "fig1", "table2", "fig2", "table3", "table4", "fig3", "sweep", "tune", "probes", "superclasses")
NEEDS = {
    "table1": [], "fig1": [],
    "table2": ["softmax-A", "ab", "softmax-ABC", "abcd"],
    "fig2": ["abcd", "ab", "ours"],
    "table3": ["abcd", "ab", "ab-abcd", "resampling", "center-loss", "range-loss", "ours", "arcface", "arcface-ours"],
    "table4": ["abcd", "ab", "ours-nk0.25", "ours-nk0.5", "ours", "ours-nk2"],
    "fig3": ["uniform", "long-tail"],
    "sweep": ["ab", "sweep-C25", "sweep-C50", "softmax-ABC", "sweep-D25", "sweep-D50", "abcd", "ours"],
    "tune": [m for grid in cells.TUNED.values() for m in grid],
    "probes": ["abcd", *(m for of, variants in cells.PROBED.items() for m in (of, *variants))],
    "superclasses": list(tables.SUPERCLASS_MODELS),
}
TITLES = {"table1": "Table 1: the long-tail groups of the training set",
          "fig1": "Fig. 1: images per identity",
          "table2": "Table 2: softmax on A, AB, ABC, ABCD",
          "fig2": "Fig. 2: classifier row norms per group",
          "table3": "Table 3: baselines, ours, ArcFace, ArcFace + ours",
          "table4": "Table 4: the number of super classes N_k",
          "fig3": "Fig. 3: uniform vs long-tail training set",
          "sweep": "Tail sweep: softmax on AB plus a growing share of the tail",
          "tune": "Baselines tuned on the BLUFR development split (ArcFace, range loss, resampling)",
          "probes": "Probes: why ours is below ABCD here, one change at a time (BLUFR development split)",
          "superclasses": "The super classes: k-means quality and purity"}


def parse_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise ConfigError(f"unknown reproduce target {unknown or names}; choose among {', '.join(NAMES)}, all")
    return names


def needed_models(names: list[str]) -> list[str]:
    """The cells' models in training order (dependencies first, each once)."""
    order: list[str] = []
    for name in names:
        for model in NEEDS[name]:
            for m in [*cells.dependencies(model), model]:
                if m not in order:
                    order.append(m)
    return order


def run_info() -> dict:
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    import tailface

    return {"commit": commit or f"tailface {tailface.__version__}", "date": datetime.now(UTC).isoformat(
        timespec="seconds"), "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def fig3_sizes(faceset, thresholds) -> tuple[int, int]:
    """Identities and images of both Fig. 3 sets: every identity with at least ``b`` images (group
    B's lower bound), ``b`` images each."""
    counts = faceset.class_counts()
    identities = int((counts >= thresholds.b).sum())
    if identities < 2:
        raise ConfigError(f"{faceset.source}: Fig. 3 needs identities with >= {thresholds.b} images")
    return identities, identities * thresholds.b


def cell_experiment(profile: Profile, root: Path, data: str | None, sizes, model: str, seed: int):
    """The cell's folder and its :class:`~tailface.experiment.ExperimentConfig`."""
    from tailface.experiment import ExperimentConfig

    doc = cells.cell_config(profile, model, seed, root, data, sizes if model in ("uniform", "long-tail") else None)
    return cells.cell_dir(root, model, seed), ExperimentConfig.from_dict(doc, f"{model} seed {seed}")


def finished(profile: Profile, root: Path, data: str | None, sizes, model: str, seed: int) -> bool:
    """Whether the cell is trained and evaluated, with the current settings: a finished cell trained
    with other settings (e.g. before a shipped config was retuned) is refused with its folder named.
    Cheap for a cell not finished (its config, which may name a base model not trained yet, is not
    built)."""
    from tailface.experiment.stages import say
    from tailface.provenance import claim_output_folder

    if not (cells.metrics_path(root, model, seed).is_file() and cells.final_checkpoint(root, model, seed).is_file()):
        return False
    out, cfg = cell_experiment(profile, root, data, sizes, model, seed)
    claim_output_folder(out, cfg.to_dict())
    say(f"{model} seed {seed}", f"done ({out}), skipped", "reproduce")
    return True


def run_cell(profile: Profile, root: Path, data: str | None, sizes, jobs: int, model: str, seed: int) -> None:
    from tailface.experiment import run_experiment
    from tailface.experiment.stages import say
    from tailface.provenance import claim_output_folder

    if finished(profile, root, data, sizes, model, seed):
        return
    out, cfg = cell_experiment(profile, root, data, sizes, model, seed)
    claim_output_folder(out, cfg.to_dict())  # an interrupted cell trained with other settings is refused too
    say(f"{model} seed {seed}", f"-> {out}", "reproduce")
    start = time.time()
    run_experiment(cfg, out, "reproduce")
    record = out / "cell.json"
    earlier = json.loads(record.read_text()) if record.is_file() else {}
    info = {**run_info(), "profile": profile.name, "cells_at_once": jobs,
            "invocations": int(earlier.get("invocations", 0)) + 1,
            "wall_s": round(float(earlier.get("wall_s", 0.0)) + time.time() - start, 1)}  # summed over resumes
    write_atomic(record, json.dumps(info, indent=1))


def cell_records(out: Path, models: list[str], seeds: int) -> list[dict]:
    """The ``cell.json`` of every finished cell of ``models`` at seeds ``0..seeds-1``."""
    return [json.loads(p.read_text()) for m in models for s in range(seeds)
            if (p := cells.cell_dir(out, m, s) / "cell.json").is_file()]


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


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def shared_data(profile: Profile, spec: str):
    """The data every cell of ``profile`` shares (the spec, its groups and options, a study's
    held-out identities) as a :class:`~tailface.experiment.config.DataConfig`."""
    from tailface.data.groups import GroupThresholds
    from tailface.experiment.config import DataConfig

    block = cells.merged(profile.baseline("ab"), profile.overrides)["data"]
    return DataConfig(train=spec, groups=GroupThresholds(**(block.get("groups") or {})),
                      options=dict(block.get("options") or {}), holdout=dict(block.get("holdout") or {}))


def reproduce(names: list[str], profile: Profile, seeds: int, out: Path, data: str | None = None,
              train: bool = True, only: list[str] | None = None, jobs: int = 1) -> list[Path]:
    """Run the cells the tables ``names`` need (unless ``train`` is false: then only the tables
    are written, from the cells finished so far; with ``only``, just those models and their base
    models; ``jobs`` cells at once, :mod:`tailface.evidence.parallel`) and write ``OUT/<name>.md``."""
    from tailface.experiment.stages import say

    out.mkdir(parents=True, exist_ok=True)
    spec = data or profile.data_spec()
    shared = shared_data(profile, spec)
    thresholds = shared.groups
    faceset = shared.open()  # the training set as the cells see it (without a study's held-out identities)
    sizes = fig3_sizes(faceset, thresholds) if "fig3" in names else None
    models = needed_models(names)
    if only is not None:
        unknown = sorted(set(only) - set(models))
        if unknown:
            raise ConfigError(f"--only {','.join(unknown)}: not a model of {','.join(names)} "
                              f"(its models: {', '.join(models)})")
        wanted = {m for model in only for m in [*cells.dependencies(model), model]}
        models = [m for m in models if m in wanted]
    start = time.time()
    todo = [(model, seed) for seed in range(seeds if train else 0) for model in models
            if jobs == 1 or not finished(profile, out, spec, sizes, model, seed)]  # no process for a finished cell
    parallel.run_cells(todo, jobs, partial(run_cell, profile, out, spec, sizes, jobs), cells.dependencies,
                       out / "logs", lambda cell, msg: say(cell, msg, "reproduce"))
    results = tables.Results(out, list(range(seeds)))
    info = run_info()
    written = []
    for name in names:
        body = WRITERS[name](results, faceset, thresholds, out, sizes)
        records = cell_records(out, NEEDS[name], seeds)
        walls = [r.get("wall_s", 0) for r in records]
        header = [f"# {TITLES[name]}", "",
                  f"`tailface reproduce {name} --profile {profile.name} --seeds {seeds} --out {out}` "
                  f"(profile: {profile.description}). Data: `{spec}`. Seeds 0..{seeds - 1}. Written {info['date']} at "
                  f"commit {info['commit']} on {info['machine']}, {info['cpus']} CPUs, torch {info['torch']}, "
                  f"{info['threads']} threads{', GPU ' + info['cuda'] if info['cuda'] else ''}. Training wall time "
                  f"of its cells: {sum(walls) / 60:.1f} min in all (this invocation: {(time.time() - start) / 60:.1f} "
                  f"min){training_setup(records)}. Paper: ResNet-34, 1.1M MS-Celeb-1M images, MegaFace with 1M "
                  f"distractors; ours: MegaFace-style proxy on LFW (docs/evaluation.md).", ""]
        path = out / f"{name}.md"
        write_atomic(path, "\n".join(header + [body, ""]))
        written.append(path)
    return written


# each target's writer: (results, faceset, thresholds, out, Fig. 3 sizes) -> markdown
WRITERS = {
    "table1": lambda r, fs, th, out, sizes: tables.table1(r, fs, th),
    "fig1": lambda r, fs, th, out, sizes: tables.fig1(r, fs, th, out),
    "table2": lambda r, fs, th, out, sizes: tables.table2(r),
    "fig2": lambda r, fs, th, out, sizes: tables.fig2(r, fs, th, out),
    "table3": lambda r, fs, th, out, sizes: tables.table3(r),
    "table4": lambda r, fs, th, out, sizes: tables.table4(r),
    "fig3": lambda r, fs, th, out, sizes: tables.fig3(r, out, sizes),
    "sweep": lambda r, fs, th, out, sizes: tables.sweep(r, fs, th, out),
    "tune": lambda r, fs, th, out, sizes: tables.tune(r),
    "probes": lambda r, fs, th, out, sizes: tables.probes(r),
    "superclasses": lambda r, fs, th, out, sizes: tables.superclasses(r),
}
