"""``run_experiment``: one runner for every experiment, whatever its kind (:mod:`tailface.experiment.kinds`).

Holds OUT's lock (:mod:`tailface.locks`: a second process on OUT is refused), opens the dataset,
writes ``OUT/config.yaml`` (the resolved configuration), joins the process
group once for all stages (under torchrun), and runs the stages of the config's kind
(:mod:`tailface.experiment.stages`): finished stages are skipped, an interrupted one resumes, each
only when the inputs it recorded are the current ones (:mod:`tailface.fingerprints`). The
kind says where the experiment's model, metrics and report are.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import yaml

from tailface.atomic import write_text
from tailface.data.decoded import memory_budget
from tailface.data.training_set import open_pool
from tailface.experiment.config import ExperimentConfig
from tailface.experiment.stages import is_main_process, run_stages, say
from tailface.fingerprints import config_print, dataset_print
from tailface.locks import hold
from tailface.provenance import claim_output_folder, write_environment, write_skipped
from tailface.train import distributed as ddp
from tailface.train.trainer import resolve_device


@dataclass(frozen=True)
class RunResult:
    final: Path  # the experiment's model, its kind's ``final`` (baseline: train/final.pt; method: dispersion/)
    metrics: dict | None  # its evaluation (None without eval.protocols)
    report: Path | None  # its kind's summary page (the method's report.md), or None
    outputs: dict[str, Path]  # every stage's output


def run_experiment(cfg: ExperimentConfig, out_dir, command: str = "run", force: bool = False,
                   accept_changed: bool = False) -> RunResult:
    """``accept_changed`` (``--accept-changed-inputs``): keep a training stage's work made from other
    inputs than now (its data, config, earlier stages' files; :mod:`tailface.fingerprints`) instead
    of stopping with the error that names what changed."""
    out = Path(out_dir)
    memory_budget()  # a bad $TAILFACE_DECODED_MIB stops here, before anything is written, not when training starts
    with hold(out, command) if is_main_process() else nullcontext():  # one live process per folder
        return _run(cfg, out, command, force, accept_changed)


def common_prints(cfg: ExperimentConfig, faceset) -> dict[str, dict]:
    """The prints every stage's record holds: the training data as opened (``data.train``), and the
    model and head blocks."""
    return {"data": dataset_print(cfg.data.train, faceset), "model": config_print(cfg.model.to_block()),
            "head": config_print(cfg.head.to_block())}


def _run(cfg: ExperimentConfig, out: Path, command: str, force: bool, accept_changed: bool = False) -> RunResult:
    kind = cfg.kind
    if is_main_process():
        claim_output_folder(out, cfg.to_dict(), force)  # one experiment per folder (issue 14)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        write_environment(out, cfg.data.train)  # what must match for a bit-identical rerun
    # one process group for every stage (re-initialising it between stages can hang under torchrun)
    device = resolve_device(cfg.stage_train(kind.first_stage(cfg)).device, int(os.environ.get("LOCAL_RANK", 0)))
    info = ddp.init_distributed(device.type == "cuda")
    try:
        faceset = open_pool(cfg.data)
        if is_main_process() and (skipped := write_skipped(out, faceset)) is not None:
            say("data", f"{len(getattr(faceset, 'skipped', ()))} bad files left out, listed in {skipped}", command)
        outputs = run_stages(kind.stages(cfg, out, faceset, command), command, common_prints(cfg, faceset),
                             accept_changed)
    finally:
        ddp.shutdown(info)
    metrics_path = out / kind.metrics
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() and is_main_process() else None
    return RunResult(out / kind.final, metrics, out / kind.report if kind.report else None, outputs)
