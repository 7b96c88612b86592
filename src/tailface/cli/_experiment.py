"""What ``tailface train`` and ``tailface run`` share: their options and the call of the runner."""

from __future__ import annotations

import argparse
from pathlib import Path

from tailface.configs import describe, resolve_config, shipped_configs
from tailface.locks import check_output_folder


def add_experiment_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<config name>)")
    p.add_argument("--data", default=None, help="override data.train (any dataset spec)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the total epoch budget (AB-ABCD keeps its pretrain/fine-tune split; the "
                        "method: base model and prototype + dispersion budget, split 40/60)")
    p.add_argument("--max-steps", type=int, default=None, help="stop each training stage after this many steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--force", action="store_true",
                   help="OUT holds a different experiment: delete its results first (default: refuse)")
    p.add_argument("--list-configs", action="store_true", help="list the shipped configs and exit")


def list_configs() -> int:
    configs = shipped_configs()
    width = max(len(name) for name in configs)
    for name, path in configs.items():
        print(f"{name.ljust(width)}  {describe(path)}")
    return 0


def run_from_args(args: argparse.Namespace, command: str) -> int:
    if args.list_configs:
        return list_configs()
    if args.out is not None:
        check_output_folder(args.out)  # a file named by --out: refused before any work
    # here, not at the top: the experiment package loads torch, scipy and faiss (1.9 s measured), which
    # `tailface --help`, `--list-configs` and the light verbs must not pay
    from tailface.experiment import ExperimentConfig, run_experiment
    from tailface.experiment.stages import is_main_process

    path = resolve_config(args.config)
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("device", args.device),
                                   ("num_workers", args.num_workers)) if v is not None}
    cfg = ExperimentConfig.load(path).with_data(args.data).with_epochs(args.epochs).with_train(**overrides)
    out = args.out or Path("runs") / path.stem
    result = run_experiment(cfg, out, command, force=args.force)
    if is_main_process():
        print(f"final checkpoint: {result.final}")
        if result.report is not None:
            print(f"report: {result.report}")
    return 0
