"""``run_experiment``: one runner for every experiment (a baseline or aggregate-and-disperse).

Opens the dataset, writes ``OUT/config.yaml`` (the resolved configuration), joins the process
group once for all stages (under torchrun), and runs the experiment's stages
(:mod:`tailface.experiment.stages`): finished stages are skipped, an interrupted one resumes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from tailface.atomic import write_text
from tailface.experiment.config import ExperimentConfig
from tailface.experiment.stages import is_main_process, run_stages, say


@dataclass(frozen=True)
class RunResult:
    final: Path  # the experiment's model: the baseline's train/final.pt, the method's dispersion/final.pt
    metrics: dict | None  # its evaluation (None without eval.protocols)
    report: Path | None  # the method's report.md
    outputs: dict[str, Path]  # every stage's output


def run_experiment(cfg: ExperimentConfig, out_dir, command: str = "run", force: bool = False) -> RunResult:
    from tailface.provenance import claim_output_folder, write_environment, write_skipped
    from tailface.train import distributed as ddp
    from tailface.train.trainer import resolve_device

    out = Path(out_dir)
    if is_main_process():
        claim_output_folder(out, cfg.to_dict(), force)  # one experiment per folder (issue 14)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        write_environment(out, cfg.data.train)  # what must match for a bit-identical rerun
    # one process group for every stage (re-initialising it between stages can hang under torchrun)
    device = resolve_device(cfg.stage_train(_first_stage(cfg)).device, int(os.environ.get("LOCAL_RANK", 0)))
    info = ddp.init_distributed(device.type == "cuda")
    try:
        faceset = cfg.data.open()
        if is_main_process() and (skipped := write_skipped(out, faceset)) is not None:
            say("data", f"{len(faceset.skipped)} bad files left out, listed in {skipped}", command)
        if cfg.method is not None:
            from tailface.experiment.method import MethodStages

            stages = MethodStages(cfg, out, faceset, command).stages()
            final, report = out / "dispersion" / "final.pt", out / "report.md"
            metrics_path = out / "eval" / "ours" / "metrics.json"
        else:
            from tailface.experiment.baseline import baseline_stages

            stages = baseline_stages(cfg, out, faceset, command)
            final, report, metrics_path = out / "train" / "final.pt", None, out / "eval" / "metrics.json"
        outputs = run_stages(stages, command)
    finally:
        ddp.shutdown(info)
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() and is_main_process() else None
    return RunResult(final, metrics, report, outputs)


def _first_stage(cfg: ExperimentConfig) -> str:
    if cfg.method is not None:
        return "base"
    return "pretrain" if cfg.pretrain is not None else "train"
