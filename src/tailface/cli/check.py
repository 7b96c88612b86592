"""``tailface check DATA``: decode every image once and list those that cannot be read.

A verb of its own, not a flag of ``analyze``: ``analyze`` reads only the index (seconds, even for
millions of images), a decode pass reads every pixel (minutes to hours, hence ``--num-workers`` and a
progress bar), and a verb is what the errors of ``train``/``study`` can name as the way to find every
bad image before the work. Exit 0 when every image decodes, 2 when any does not (for scripts).
"""

from __future__ import annotations

import logging

from tailface.errors import DataError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="decode every image of a dataset once; list the unreadable ones (exit 2 if any)",
        description="Open DATA (any dataset spec: see `tailface analyze --help`), decode every image once and "
                    "list each one that cannot be read (missing, empty, truncated, corrupt, not an image) as "
                    "'FILE: problem' on stdout, then the image sizes found. Exit code 0 when every image "
                    "decodes, 2 when any does not. To leave unreadable images out: data.options.skip_bad: true "
                    "in an experiment config, or tailface pack --skip-bad.")
    p.add_argument("data", help="dataset spec (folder, list file, .rec, celeba:DIR:FILE, synthetic)")
    p.add_argument("--num-workers", type=int, default=0, metavar="N",
                   help="decode in N worker processes (default 0: in this process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    # here, not at the top: the decode pass loads torch's DataLoader; `tailface --help` stays light
    from tailface.data.decode_check import scan
    from tailface.data.open import open_faceset

    if args.num_workers < 0:
        raise DataError(f"--num-workers must be >= 0, got {args.num_workers}")
    sources = logging.getLogger("tailface.data.sources")
    level = sources.level
    sources.setLevel(logging.ERROR)  # its "skipped N files" warning: this command lists them below
    try:
        faceset = open_faceset(args.data, **({} if args.data == "synthetic" else {"skip_bad": True}))
    finally:
        sources.setLevel(level)
    left_out = list(getattr(faceset, "skipped", []))  # missing or empty files, left out when opening
    files = getattr(faceset, "skipped_paths", None) or [f"{faceset.source}#{image_id}" for image_id, _ in left_out]
    total = len(faceset) + len(left_out)
    print(f"{faceset.source}: {total:,} images, {faceset.num_classes:,} identities")
    for file, (_, why) in zip(files, left_out):
        print(f"  {file}: {why}")
    found = scan(faceset, progress=not args.no_progress, num_workers=args.num_workers)
    for _, message in found.bad:
        print(f"  {message}")
    bad = len(left_out) + len(found.bad)
    sizes = ", ".join(f"{h}x{w}: {n:,}" for (h, w), n in found.sizes.most_common(3))
    more = f", {len(found.sizes) - 3} other sizes" if len(found.sizes) > 3 else ""
    print(f"decoded {total:,} images: {total - bad:,} readable (sizes {sizes or 'none'}{more}), {bad:,} unreadable")
    if bad:
        raise DataError(f"{args.data}: {bad:,} of {total:,} images cannot be read (listed above); to leave them "
                        "out: data.options.skip_bad: true in the experiment config, or tailface pack --skip-bad "
                        "(a clean pack)")
    return 0
