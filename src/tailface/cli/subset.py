"""``tailface subset DATA OUT.rec``: a long-tail group composition, or a uniform / long-tail
subset with given numbers of identities and images (paper, Table 2 and Fig. 3)."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "subset", help="write a subset of a dataset (group composition, uniform or long-tail)",
        description="Write a subset of DATA (any open_faceset spec) as OUT.rec. By default keep "
                    "the identities of --groups (groups of DATA's class sizes), optionally only "
                    "--identities G=N random identities of some of them. With --uniform or "
                    "--long-tail, draw --num-identities identities and --num-images images with "
                    "equal or power-law class sizes (the same numbers give the paper's Fig. 3 pair). "
                    "Deterministic by --seed.")
    p.add_argument("data", help="dataset spec")
    p.add_argument("out", type=Path, help="output .rec (its .idx is written beside it)")
    p.add_argument("--groups", default=None, help="groups to keep, e.g. AB (default ABCD)")
    p.add_argument("--identities", default="",
                   help="random identities per group, e.g. C=1800,D=5400 (others: all)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--uniform", action="store_true", help="equal images per identity")
    mode.add_argument("--long-tail", action="store_true", help="power-law images per identity")
    p.add_argument("--num-identities", type=int, help="identities (with --uniform/--long-tail)")
    p.add_argument("--num-images", type=int, help="images (with --uniform/--long-tail)")
    p.add_argument("--max-per-class", type=int, help="largest class of a --long-tail subset")
    p.add_argument("--thresholds", default="21,10,4", help="group lower bounds A,B,C (default 21,10,4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_identities(text: str) -> dict[str, int]:
    from tailface.errors import ConfigError

    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        group, _, number = item.partition("=")
        if not number.strip().isdigit():
            raise ConfigError(f"--identities {text!r}: expected items like C=1800")
        out[group.strip().upper()] = int(number)
    return out


def check_flags(args) -> None:
    """A flag that does not apply to the chosen mode is an error, never silently ignored."""
    from tailface.errors import ConfigError

    sampled = args.uniform or args.long_tail
    mode = "--uniform" if args.uniform else "--long-tail" if args.long_tail else "a group composition"
    given = {"--num-identities": args.num_identities is not None, "--num-images": args.num_images is not None,
             "--max-per-class": args.max_per_class is not None, "--groups": args.groups is not None,
             "--identities": bool(args.identities)}
    applies = {"--num-identities": sampled, "--num-images": sampled, "--max-per-class": bool(args.long_tail),
               "--groups": not sampled, "--identities": not sampled}
    wrong = [flag for flag in given if given[flag] and not applies[flag]]
    if wrong:
        where = {"--num-identities": "--uniform or --long-tail", "--num-images": "--uniform or --long-tail",
                 "--max-per-class": "--long-tail", "--groups": "a group composition (no --uniform/--long-tail)",
                 "--identities": "a group composition (no --uniform/--long-tail)"}[wrong[0]]
        raise ConfigError(f"{args.out}: {wrong[0]} does not apply to {mode}; it is used only with {where}")


def run(args) -> int:
    from tailface.cli.analyze import parse_thresholds
    from tailface.data.analysis import format_table, group_table
    from tailface.data.open import open_faceset
    from tailface.data.recordio import write_recordio
    from tailface.data.subsets import composition_subset, long_tail_subset, uniform_subset
    from tailface.errors import ConfigError

    if args.out.suffix != ".rec":
        raise ConfigError(f"{args.out}: the output must end in .rec")
    others = [p.name for p in args.out.parent.glob("*.rec") if p.resolve() != args.out.resolve()]
    if others:
        raise ConfigError(f"{args.out.parent} already holds {others[0]}: packs keep classes.txt and "
                          f"image_ids.txt beside them, so write the subset to a folder of its own")
    check_flags(args)
    thresholds = parse_thresholds(args.thresholds)
    faceset = open_faceset(args.data)
    labels = faceset.labels
    if args.uniform or args.long_tail:
        if args.num_identities is None or args.num_images is None:
            raise ConfigError("--uniform/--long-tail need --num-identities and --num-images")
        if args.uniform:
            indices = uniform_subset(labels, args.num_identities, args.num_images, seed=args.seed)
        else:
            indices = long_tail_subset(labels, args.num_identities, args.num_images, seed=args.seed,
                                       max_per_class=args.max_per_class)
    else:
        indices = composition_subset(labels, args.groups or "ABCD", parse_identities(args.identities),
                                     thresholds, seed=args.seed)
    subset = faceset.subset(indices)
    print(f"subset of {faceset.source}: {len(subset):,} of {len(faceset):,} images, "
          f"{subset.num_classes:,} of {faceset.num_classes:,} identities")
    print(format_table(group_table(subset.class_counts(), thresholds), thresholds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = write_recordio(subset, args.out, progress=not args.no_progress)
    print(f"wrote {result.path} (+ .idx): {result.num_images} images, {result.num_classes} classes")
    return 0
