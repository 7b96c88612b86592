"""``tailface train CONFIG``: run the experiment of CONFIG (a baseline, or the method)."""

from __future__ import annotations

from tailface.cli._experiment import add_experiment_arguments, run_from_args
from tailface.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a baseline (or any experiment) from a YAML config",
        description="Train (and evaluate, when eval.protocols is set) the experiment described by "
                    "CONFIG (blocks data, model, head, [pretrain], train, eval, [method]): a path or a "
                    "shipped config name (--list-configs). Outputs go to --out; finished stages are "
                    "reused and an interrupted stage resumes from its last.pt. Works under "
                    "`torchrun --nproc_per_node N` (DDP: NCCL on GPU, gloo on CPU).")
    p.add_argument("config", nargs="?", help="experiment YAML or shipped name, e.g. baselines/abcd")
    add_experiment_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.config is None and not args.list_configs:
        raise ConfigError("give an experiment CONFIG (a YAML path or a shipped name; --list-configs lists them)")
    return run_from_args(args, "train")
