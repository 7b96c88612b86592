"""``tailface analyze DATA``: the long-tail group table (paper, Table 1) and class-size plot (Fig. 1).

It reads the index only (labels, file sizes), never the pixels: ``tailface check DATA`` decodes every
image (:mod:`tailface.cli.check`), and the table's last line says so."""

from __future__ import annotations

import json
from pathlib import Path

from tailface.data.analysis import format_table, group_table, plot_class_sizes, table_dict
from tailface.data.groups import GroupThresholds
from tailface.data.open import open_faceset
from tailface.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze", help="long-tail group table and class-size plot of a dataset",
        description="Print the paper's Table 1 for a dataset (any open_faceset spec): identities, "
                    "images, their shares and the images-per-class range of groups A-D, head "
                    "(A+B), tail (C+D) and total; optionally plot the class sizes (Fig. 1). The images are "
                    "not decoded: tailface check DATA decodes every one and lists those that cannot be read.")
    p.add_argument("data", help="dataset spec (folder, list file, .rec, celeba:DIR:FILE, synthetic)")
    p.add_argument("--thresholds", default="21,10,4",
                   help="lower bounds of groups A,B,C in images per class (default 21,10,4)")
    p.add_argument("--plot", type=Path, help="write the class-size plot to this PNG")
    p.add_argument("--json", type=Path, help="write the table as JSON")
    p.set_defaults(func=run)


def parse_thresholds(text: str):
    try:
        a, b, c = (int(v) for v in text.split(","))
        return GroupThresholds(a, b, c)
    except ValueError as exc:
        raise ConfigError(f"--thresholds {text!r}: expected three integers A,B,C with A > B > C >= 1 "
                          f"({exc})") from None


def run(args) -> int:
    thresholds = parse_thresholds(args.thresholds)
    faceset = open_faceset(args.data)
    counts = faceset.class_counts()
    rows = group_table(counts, thresholds)
    print(f"{faceset.source}: {len(faceset):,} images, {faceset.num_classes:,} identities")
    print(format_table(rows, thresholds))
    print(f"(images not decoded; tailface check {args.data} decodes every one and lists those that cannot be read)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"data": str(args.data), **table_dict(rows, thresholds)}, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {plot_class_sizes(counts, args.plot, thresholds, title=str(args.data))}")
    return 0
