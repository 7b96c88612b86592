"""``tailface study DATA``: does the tail hurt softmax on DATA, and does aggregate-and-disperse help?"""

from __future__ import annotations

from pathlib import Path

from tailface.cli.reproduce import add_cell_arguments, check_cell_arguments
from tailface.locks import check_output_folder


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="on your own data: does the tail hurt softmax, does aggregate-and-disperse help?",
        description="Hold out a share of DATA's identities as the test set, train AB, ABCD, ours and the tail "
                    "sweep (resumable cells, seeds accumulate), and write OUT/study.md: the group table, the "
                    "sweep, paired differences over seeds with 95% intervals, and a recommendation. DATA is any "
                    "dataset spec (see `tailface analyze --help`) or `synthetic`.")
    p.add_argument("data", help="dataset spec")
    p.add_argument("--profile", default="cpu", help="cpu (32x32 small network), gpu (ResNet-34 112x112), or a YAML")
    add_cell_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/study-<data name>)")
    p.set_defaults(func=run)


def run(args) -> int:
    # here, not at the top: the study loads torch and scipy (2.6 s measured); `tailface --help` stays light
    from tailface.evidence.study import study

    check_cell_arguments(args)
    if args.out is not None:
        check_output_folder(args.out)  # before any work
    out = args.out or Path("runs") / f"study-{Path(str(args.data).rstrip('/')).name or 'data'}"
    print(f"report: {study(args.data, args.profile, args.seeds, out, jobs=args.jobs)}")
    return 0
