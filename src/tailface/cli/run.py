"""``tailface run [CONFIG]``: the aggregate-and-disperse pipeline; ``tailface norms CHECKPOINT``:
classifier row norms per group A-D."""

from __future__ import annotations

import argparse

from tailface.cli._experiment import add_experiment_arguments, run_from_args
from tailface.cli.analyze import parse_thresholds
from tailface.data.groups import GroupThresholds
from tailface.data.open import open_faceset
from tailface.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run an experiment; by default aggregate-and-disperse on the built-in data",
                              description="Run the experiment of CONFIG (default: the shipped method/synthetic): "
                                          "for the method, base model (AB) -> tail features -> clustering -> "
                                          "prototype -> dispersion -> evaluation -> report; every stage under "
                                          "OUT/<stage>/, completed stages skipped, interrupted training resumed.")
    p.add_argument("config", nargs="?", help="experiment YAML or shipped name (default: method/synthetic)")
    add_experiment_arguments(p)
    p.set_defaults(func=_run)

    n = subparsers.add_parser("norms", help="classifier row norms per group A-D of a checkpoint",
                              description="Mean/std/median L2 norm of the classifier rows of each group "
                                          "(paper Fig. 2a). Works for plain heads over all classes and for "
                                          "dispersion heads.")
    n.add_argument("checkpoint", nargs="+", help="checkpoint(s) (final.pt / last.pt)")
    n.add_argument("--data", help="the training set the checkpoint was trained on (default: synthetic)")
    n.add_argument("--thresholds", default=None, metavar="A,B,C",
                   help="lower bounds of groups A,B,C in images per class (default 21,10,4), as in analyze, "
                        "subset and perturb")
    n.add_argument("--groups", nargs=3, type=int, default=None, help=argparse.SUPPRESS)  # the old spelling
    n.add_argument("--plot", help="write a PNG bar chart here")
    n.set_defaults(func=_norms)


def _run(args: argparse.Namespace) -> int:
    return run_from_args(args, "run")


def _norms(args: argparse.Namespace) -> int:
    # here, not at the top: the diagnostics read checkpoints with torch (1.4 s measured); `tailface --help` stays light
    from tailface.method.diagnostics import checkpoint_row_groups, norms_by_group, norms_table, plot_norms

    if args.groups is not None and args.thresholds is not None:
        raise ConfigError("give the group thresholds once: --thresholds A,B,C (--groups A B C is its old spelling)")
    if args.groups is not None:  # the old spelling, same meaning
        try:
            thresholds = GroupThresholds(*args.groups)
        except ValueError as exc:
            raise ConfigError(f"--groups: {exc}") from None
    else:
        thresholds = parse_thresholds(args.thresholds or "21,10,4")
    faceset = open_faceset(args.data)
    results = {}
    for ckpt in args.checkpoint:
        weight, groups = checkpoint_row_groups(ckpt, faceset, thresholds)
        results[str(ckpt)] = norms_by_group(weight, groups)
    print(norms_table(results))
    if args.plot:
        print(f"plot: {plot_norms(args.plot, results)}")
    return 0
