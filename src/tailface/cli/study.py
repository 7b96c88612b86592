"""``tailface study DATA``: does the tail hurt softmax on DATA, does aggregate-and-disperse help, and
which method (``--methods``), if any, beats plain softmax on all identities beyond noise?

``--seeds`` defaults to 3: the verdicts are paired differences over seeds with a 95% t-interval
(:mod:`tailface.evidence.stats`); one seed gives no interval at all, two give one of +- 9 standard
deviations, three the first usable one (+- 2.5). The plan said before training states what the
chosen count can answer and what it will cost. ``--methods`` names rows of the methods table
(:data:`tailface.evidence.methods.METHODS`); an unknown name is refused before any work.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tailface.cli.reproduce import add_cell_arguments, check_cell_arguments
from tailface.errors import ConfigError
from tailface.locks import check_output_folder

DEFAULT_SEEDS = 3  # = tailface.evidence.study_plan.DEFAULT_SEEDS (not imported here: it loads torch)
DEFAULT_HOLDOUT = 0.2  # = tailface.evidence.study.HOLDOUT["fraction"]


class _MethodsHelp(argparse.HelpFormatter):
    """Names the methods table's rows when the help is shown: the table is imported only then (and
    in ``run``), since it loads torch, which every start of the command line would otherwise pay."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest == "methods":
            from tailface.evidence.study_methods import method_names  # see the class docstring

            return (f"{action.help}: all, or comma-separated among {', '.join(method_names())} "
                    "(default: none besides AB, ABCD and ours)")
        return super()._get_help_string(action)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="on your own data: does the tail hurt softmax, does aggregate-and-disperse help, which "
                      "method beats plain softmax?",
        formatter_class=_MethodsHelp,
        description="Hold out a share of DATA's identities as the test set, train AB, ABCD, ours, the tail "
                    "sweep and the --methods chosen (resumable cells, seeds accumulate), and write OUT/study.md: "
                    "the group table, the sweep, paired differences over seeds with 95% intervals, and a "
                    "recommendation: the best method against plain softmax on all identities (ABCD), or 'nothing "
                    "beats plain softmax here beyond noise' (OUT/study.json: the same as data). Before training it "
                    "checks the data (a tail, a test set that can answer) and says the plan: the cells, what the "
                    "seeds can answer, the test set's DIR resolution and an estimate of the time; then each cell "
                    "reports 'cell k of n' with the time left. DATA is any dataset spec (see "
                    "`tailface analyze --help`) or `synthetic`.")
    p.add_argument("data", help="dataset spec")
    p.add_argument("--profile", default="cpu", help="cpu (32x32 small network), gpu (ResNet-34 112x112), or a YAML")
    add_cell_arguments(p, DEFAULT_SEEDS, "; one seed gives no interval: every answer would be 'cannot be told'")
    p.add_argument("--holdout", type=float, default=DEFAULT_HOLDOUT, metavar="FRACTION",
                   help=f"share of the identities with >= 2 images held out as the test set (default "
                        f"{DEFAULT_HOLDOUT:g})")
    p.add_argument("--methods", default=None, metavar="all|NAME,...",
                   help="methods of `tailface reproduce methods` to train too and compare with ABCD")
    p.add_argument("--accept-changed-inputs", action="store_true",
                   help="a finished cell (or a trained stage of one) was trained on other data or inputs than now: "
                        "keep it and go on (default: stop, naming what changed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (train.progress: false)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/study-<data name>)")
    p.set_defaults(func=run)


def run(args) -> int:
    # here, not at the top: the study loads torch and scipy (2.6 s measured); `tailface --help` stays light
    from tailface.evidence.study import study
    from tailface.evidence.study_methods import parse_methods

    check_cell_arguments(args)
    if not 0 < args.holdout < 1:
        raise ConfigError(f"--holdout must be a fraction in (0, 1), got {args.holdout:g}")
    methods = parse_methods(args.methods) if args.methods is not None else ()  # before any work
    if args.out is not None:
        check_output_folder(args.out)  # before any work
    out = args.out or Path("runs") / f"study-{Path(str(args.data).rstrip('/')).name or 'data'}"
    report = study(args.data, args.profile, args.seeds, out, jobs=args.jobs, holdout=args.holdout, methods=methods,
                   accept_changed=args.accept_changed_inputs, progress=not args.no_progress)
    print(f"report: {report}")
    return 0
