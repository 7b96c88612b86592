"""What ``tailface train`` and ``tailface run`` share: their options and the call of the runner.

The flags are checked before the config is read, so that a bad value is blamed on the flag, not on
the config file. A shipped config's ``data/NAME`` is the prepared set ``NAME`` (``tailface prepare
NAME`` writes it to ``$TAILFACE_DATA/NAME``, default ``./data/NAME``); a missing one stops the
command before any output is written, naming both ways out."""

from __future__ import annotations

import argparse
from pathlib import Path

from tailface.configs import DEFAULT, describe, is_shipped, resolve_config, shipped_configs
from tailface.errors import ConfigError, DataError
from tailface.locks import check_output_folder
from tailface.paths import prepared_name, resolve_prepared_spec


def add_experiment_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<config name>)")
    p.add_argument("--data", default=None, help="override data.train (any dataset spec)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the total epoch budget (AB-ABCD keeps its pretrain/fine-tune split; the "
                        "method: base model and prototype + dispersion budget, split 40/60)")
    p.add_argument("--max-steps", type=int, default=None, help="stop each training stage after this many steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--num-workers", type=int, default=None, help="override train.num_workers (>= 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (train.progress: false)")
    p.add_argument("--force", action="store_true",
                   help="OUT holds a different experiment: delete its results first (default: refuse)")
    p.add_argument("--accept-changed-inputs", action="store_true",
                   help="a trained stage (final.pt, last.pt) was made from other inputs than now (data, config, "
                        "an earlier stage's file): keep it and go on (default: stop, naming what changed)")
    p.add_argument("--list-configs", action="store_true", help="list the shipped configs and exit")


def list_configs() -> int:
    configs = shipped_configs()
    width = max(len(name) for name in configs)
    for name, path in configs.items():
        print(f"{name.ljust(width)}  {describe(path)}")
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """The numeric flags, each error naming its flag (not the config the value would go into)."""
    for flag, value, low in (("--epochs", args.epochs, 1), ("--max-steps", args.max_steps, 1),
                             ("--num-workers", args.num_workers, 0)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} must be {'a positive integer' if low else 'an integer >= 0'}, got {value}")


def shipped_data(spec: str, config: str) -> str:
    """The training set of a shipped config: ``data/NAME`` -> the prepared set (module docstring)."""
    name = prepared_name(spec)
    resolved = resolve_prepared_spec(spec)
    if name is not None and not Path(resolved).exists():
        raise DataError(f"{resolved}: the prepared set {name} is not there (the shipped config {config} reads "
                        f"data.train: {spec}, i.e. $TAILFACE_DATA/{name}, default ./data/{name}); run "
                        f"`tailface prepare {name}` or pass `--data`")
    return resolved


def run_from_args(args: argparse.Namespace, command: str) -> int:
    if args.list_configs:
        return list_configs()
    check_flags(args)
    if args.out is not None:
        check_output_folder(args.out)  # a file named by --out: refused before any work
    # here, not at the top: the experiment package loads torch, scipy and faiss (1.9 s measured), which
    # `tailface --help`, `--list-configs` and the light verbs must not pay
    from tailface.experiment import ExperimentConfig, run_experiment
    from tailface.experiment.report import seed_note
    from tailface.experiment.stages import is_main_process

    path = resolve_config(args.config)
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("device", args.device),
                                   ("num_workers", args.num_workers),
                                   ("progress", False if args.no_progress else None)) if v is not None}
    cfg = ExperimentConfig.load(path)
    data = args.data
    if data is None and is_shipped(path):
        data = shipped_data(cfg.data.train, args.config or DEFAULT)
    cfg = cfg.with_data(data).with_epochs(args.epochs).with_train(**overrides)
    out = args.out or Path("runs") / path.stem
    result = run_experiment(cfg, out, command, force=args.force, accept_changed=args.accept_changed_inputs)
    if is_main_process():
        print(f"final checkpoint: {result.final}")
        if result.report is not None:
            print(f"report: {result.report}")
            print(f"note: {seed_note(cfg)}")
    return 0
