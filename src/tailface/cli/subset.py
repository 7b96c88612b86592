"""``tailface subset DATA OUT.rec``: write a training set drawn as a config's ``data:`` block
draws it (:mod:`tailface.data.training_set`): hold-out identities removed, a uniform / long-tail
sample of identities and images, the classes of long-tail groups (paper, Table 2 and Fig. 3).

The flags are the config's keys: ``--holdout F --holdout-seed h`` is ``holdout: {fraction: F,
seed: h}``; ``--uniform|--long-tail --num-identities N --num-images M`` is ``sample: {kind, identities:
N, images: M}``; ``--groups AB --share C=0.25`` is ``subset: AB, tail_share: {C: 0.25}``; ``--seed s``
is both ``sample.seed`` and ``subset_seed``. The same values select the same images.
"""

from __future__ import annotations

from pathlib import Path

from tailface.cli.analyze import parse_thresholds
from tailface.data.analysis import format_table, group_table
from tailface.data.recordio import write_recordio
from tailface.data.training_set import open_data, sample_images, select_groups, without_heldout
from tailface.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "subset", help="write a subset of a dataset (hold-out, uniform or long-tail sample, group composition)",
        description="Write a subset of DATA (any open_faceset spec) as OUT.rec, drawn as a config's data block "
                    "draws its training set: first --holdout leaves out a share of the identities (data.holdout), "
                    "then --uniform or --long-tail draws --num-identities identities and --num-images images "
                    "with equal or power-law class sizes (data.sample; the same numbers give the paper's Fig. 3 "
                    "pair), then the identities of --groups are kept (data.subset; groups of the class sizes "
                    "at that point), --share G=F adds that fraction of another group's identities "
                    "(data.tail_share) and --identities G=N keeps only N random identities of a kept group. "
                    "Deterministic by --seed (data.sample.seed and data.subset_seed) and --holdout-seed.")
    p.add_argument("data", help="dataset spec")
    p.add_argument("out", type=Path, help="output .rec (its .idx is written beside it)")
    p.add_argument("--groups", default=None, help="groups to keep, e.g. AB (default ABCD)")
    p.add_argument("--share", default="",
                   help="fraction of the identities of groups not kept, e.g. C=0.25 (data.tail_share)")
    p.add_argument("--identities", default="",
                   help="random identities of kept groups, e.g. C=1800,D=5400 (others: all)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--uniform", action="store_true", help="equal images per identity")
    mode.add_argument("--long-tail", action="store_true", help="power-law images per identity")
    p.add_argument("--num-identities", type=int, help="identities (with --uniform/--long-tail)")
    p.add_argument("--num-images", type=int, help="images (with --uniform/--long-tail)")
    p.add_argument("--max-per-class", type=int, help="largest class of a --long-tail subset (no config key)")
    p.add_argument("--holdout", type=float, default=None,
                   help="leave out this fraction of the identities with >= 2 images (data.holdout.fraction)")
    p.add_argument("--holdout-seed", type=int, default=None, help="seed of --holdout (default 0)")
    p.add_argument("--thresholds", default="21,10,4", help="group lower bounds A,B,C (default 21,10,4)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sample and of the groups' identities (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_identities(text: str) -> dict[str, int]:
    """``C=1800,D=5400`` -> ``{"C": 1800, "D": 5400}``."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        group, _, number = item.partition("=")
        if not number.strip().isdigit():
            raise ConfigError(f"--identities {text!r}: expected items like C=1800")
        out[group.strip().upper()] = int(number)
    return out


def parse_share(text: str) -> dict[str, float]:
    """``C=0.25,D=0.1`` -> ``{"C": 0.25, "D": 0.1}`` (fractions in [0, 1])."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        group, _, number = item.partition("=")
        try:
            value = float(number)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 1:
            raise ConfigError(f"--share {text!r}: expected items like C=0.25 (a fraction in [0, 1])")
        out[group.strip().upper()] = value
    return out


def check_flags(args) -> None:
    """A flag that does not apply to the chosen mode is an error, never silently ignored."""
    sampled = args.uniform or args.long_tail
    mode = "--uniform" if args.uniform else "--long-tail" if args.long_tail else "a group composition"
    given = {"--num-identities": args.num_identities is not None, "--num-images": args.num_images is not None,
             "--max-per-class": args.max_per_class is not None, "--holdout-seed": args.holdout_seed is not None}
    applies = {"--num-identities": sampled, "--num-images": sampled, "--max-per-class": bool(args.long_tail),
               "--holdout-seed": args.holdout is not None}
    wrong = [flag for flag in given if given[flag] and not applies[flag]]
    if wrong:
        where = {"--num-identities": "--uniform or --long-tail", "--num-images": "--uniform or --long-tail",
                 "--max-per-class": "--long-tail", "--holdout-seed": "--holdout"}[wrong[0]]
        raise ConfigError(f"{args.out}: {wrong[0]} does not apply to {mode}; it is used only with {where}")
    if sampled and (args.num_identities is None or args.num_images is None):
        raise ConfigError("--uniform/--long-tail need --num-identities and --num-images")
    if args.holdout is not None and not 0 < args.holdout < 1:
        raise ConfigError(f"--holdout must be a fraction in (0, 1), got {args.holdout}")


def draw_blocks(args) -> tuple[dict, dict]:
    """The ``holdout`` and ``sample`` blocks the flags stand for (a config's ``data.holdout`` and
    ``data.sample``; ``max_per_class`` only from the command line)."""
    holdout = {} if args.holdout is None else {"fraction": args.holdout, "seed": args.holdout_seed or 0}
    sample: dict = {}
    if args.uniform or args.long_tail:
        sample = {"kind": "uniform" if args.uniform else "long-tail", "identities": args.num_identities,
                  "images": args.num_images, "seed": args.seed}
        if args.max_per_class is not None:
            sample["max_per_class"] = args.max_per_class
    return holdout, sample


def run(args) -> int:
    if args.out.suffix != ".rec":
        raise ConfigError(f"{args.out}: the output must end in .rec")
    others = [p.name for p in args.out.parent.glob("*.rec") if p.resolve() != args.out.resolve()]
    if others:
        raise ConfigError(f"{args.out.parent} already holds {others[0]}: packs keep classes.txt and "
                          f"image_ids.txt beside them, so write the subset to a folder of its own")
    check_flags(args)
    thresholds = parse_thresholds(args.thresholds)
    holdout, sample = draw_blocks(args)
    faceset = open_data(args.data)
    pool = sample_images(without_heldout(faceset, holdout, args.data), sample, args.data)
    subset = select_groups(pool, args.groups or "ABCD", thresholds, parse_share(args.share), args.seed,
                           parse_identities(args.identities))
    print(f"subset of {faceset.source}: {len(subset):,} of {len(faceset):,} images, "
          f"{subset.num_classes:,} of {faceset.num_classes:,} identities")
    print(format_table(group_table(subset.class_counts(), thresholds), thresholds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = write_recordio(subset, args.out, progress=not args.no_progress)
    print(f"wrote {result.path} (+ .idx): {result.num_images} images, {result.num_classes} classes")
    return 0
