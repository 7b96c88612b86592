"""``tailface reproduce NAME``: the paper's tables and figures, with seeds and verdicts."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from tailface.errors import ConfigError
from tailface.locks import check_output_folder


class _TargetsHelp(argparse.HelpFormatter):
    """Names the registered targets (:mod:`tailface.evidence.targets`) when the help is shown. The
    registry is imported only then, and in ``run``: it loads the targets' writers (scipy.stats,
    torch; measured: about 1.5 s), which every start of the command line would otherwise pay."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest == "name":
            from tailface.evidence.targets import target_names  # see the class docstring

            return f"comma-separated among {', '.join(target_names())}, or all"
        return super()._get_help_string(action)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="reproduce the paper's tables and figures (mean +- std over seeds, verdicts)",
        formatter_class=_TargetsHelp,
        description="Train every model a table or figure needs (one cell per model and seed, on the one runner: "
                    "finished cells are skipped, an interrupted one resumes, seeds accumulate across invocations) "
                    "and write OUT/<name>.md in the paper's layout with the paper's figures beside ours, the "
                    "paired difference of every claimed ordering with its 95% interval and a verdict (and "
                    "OUT/<name>.json: the same numbers as data).")
    p.add_argument("name", help="comma-separated target names, or all")
    p.add_argument("--profile", default="cpu", help="cpu, cpu-heldout (cpu with 20%% of the identities held out "
                   "as development data), gpu, synthetic, or a profile YAML (default cpu)")
    add_cell_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/reproduce-<profile>)")
    p.add_argument("--data", default=None, help="training set spec (default: the profile's)")
    p.add_argument("--only", default=None, metavar="MODEL[,MODEL]",
                   help="train only these models of the targets (and their base models); the tables show the rest "
                        "as far as it is finished")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the tables from the cells finished so far (e.g. while a campaign runs)")
    p.add_argument("--accept-changed-inputs", action="store_true",
                   help="a finished or archived cell (or a trained stage of one) was trained on other data or inputs "
                        "than now: keep it and go on (default: stop, naming what changed)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars in the cells (train.progress: false; changes no result or fingerprint)")
    p.add_argument("--archive", type=Path, default=None, metavar="DIR",
                   help="keep each finished cell's small records (metrics, cell.json, a regime's manifest, the split "
                        "reunion; never checkpoints) in DIR, laid out as OUT, for git: a cell archived with the same "
                        "configuration is not trained again, and the tables read a cell from OUT, else from DIR")
    p.set_defaults(func=run)


def add_cell_arguments(p, seeds: int = 1, seeds_help: str = "") -> None:
    """--seeds (default ``seeds``; ``seeds_help`` appended to its help) and --jobs, shared with ``tailface study``."""
    p.add_argument("--seeds", type=int, default=seeds, help=f"seeds 0..N-1 (default {seeds}){seeds_help}")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="train N cells at once, each in its own process with its share of the CPU threads and its "
                        "output in OUT/logs/ (default 1; on a 2-core CPU, 2 is about 1.3x faster: docs/benchmarks.md)")


def check_cell_arguments(args) -> None:
    for flag in ("seeds", "jobs"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {getattr(args, flag)}")


def run(args) -> int:
    # imported here, not at the top: the targets' writers cost about 1.5 s (see _TargetsHelp)
    from tailface.evidence.cells import Profile, merged
    from tailface.evidence.reproduce import reproduce
    from tailface.evidence.targets import parse_names

    check_cell_arguments(args)
    if args.out is not None:
        check_output_folder(args.out)  # before any work
    names = parse_names(args.name)
    profile = Profile.load(args.profile)
    if args.no_progress:
        profile = dataclasses.replace(profile, overrides=merged(profile.overrides, {"train": {"progress": False}}))
    out = args.out or Path("runs") / f"reproduce-{profile.name}"
    only = [m.strip() for m in args.only.split(",") if m.strip()] if args.only else None
    for name in reproduce(names, profile, args.seeds, out, args.data, train=not args.report_only, only=only,
                          jobs=args.jobs, archive=args.archive, accept_changed=args.accept_changed_inputs):
        print(f"wrote {out / f'{name}.md'}")
    return 0
