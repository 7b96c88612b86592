"""``tailface perturb DATA OUT``: a training set with the failure modes of web-crawled long-tail
data, built from DATA's own faces (:mod:`tailface.data.perturb`): head identities split into tail
identities, wrong identities in the tail, at most MAX images per identity. OUT is a folder
(``perturbed.lst`` over DATA's images + ``manifest.json``), itself a dataset spec.
"""

from __future__ import annotations

from pathlib import Path

from tailface.cli.analyze import parse_thresholds
from tailface.data.analysis import format_table, group_table
from tailface.data.perturb import Labelling, Perturbation, make_manifest, perturb
from tailface.data.perturb.manifest import check_out, source_reference, write_perturbed
from tailface.data.training_set import open_data
from tailface.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "perturb", help="build a perturbed training set (split head identities, tail label noise, shallow)",
        description="Write OUT, a perturbed training set over the images of DATA (any dataset spec; no image is "
                    "copied): --split-head moves a share of the images of a share of the A identities into new "
                    "identities of 1-3 images (the same person duplicated in the tail); --tail-noise gives a share "
                    "of the tail images (C, D) a wrong identity, closed-set (another tail identity) or, for the "
                    "OPEN share of them, open-set (an image of a person held out of training); --shallow keeps at "
                    "most MAX images per identity. Applied in that order, each with its own random stream of "
                    "--seed. OUT holds perturbed.lst and manifest.json (every change) and is itself a dataset "
                    "spec: `tailface analyze OUT`.")
    p.add_argument("data", help="dataset spec (the training set to perturb)")
    p.add_argument("out", type=Path, help="output folder (perturbed.lst + manifest.json)")
    p.add_argument("--split-head", metavar="SHARE:IMAGES",
                   help="split this share of the A identities, moving this share of their images into new "
                        "identities of 1-3 images, e.g. 0.5:0.3")
    p.add_argument("--tail-noise", metavar="SHARE[:OPEN]",
                   help="give this share of the tail images a wrong identity; OPEN (default 0) of them are "
                        "replaced by images of people held out of training, e.g. 0.2:0.5")
    p.add_argument("--shallow", metavar="MAX", type=int, help="keep at most MAX images per identity")
    p.add_argument("--seed", type=int, default=0, help="seed of every perturbation's stream (default 0)")
    p.add_argument("--thresholds", default="21,10,4", help="group lower bounds A,B,C (default 21,10,4)")
    p.set_defaults(func=run)


def parse_shares(flag: str, text: str | None, default_second: float | None = None) -> tuple[float, float] | None:
    """``"0.5:0.3"`` -> ``(0.5, 0.3)``; with ``default_second``, ``"0.2"`` -> ``(0.2, default_second)``."""
    if text is None:
        return None
    parts = text.split(":")
    if default_second is not None and len(parts) == 1:
        parts.append(str(default_second))
    try:
        if len(parts) != 2:
            raise ValueError
        first, second = float(parts[0]), float(parts[1])
    except ValueError:
        form = "SHARE[:OPEN], e.g. 0.2:0.5" if default_second is not None else "SHARE:IMAGES, e.g. 0.5:0.3"
        raise ConfigError(f"{flag} {text!r}: expected {form}") from None
    return first, second


def run(args) -> int:
    plan = Perturbation(split=parse_shares("--split-head", args.split_head),
                        noise=parse_shares("--tail-noise", args.tail_noise, default_second=0.0),
                        shallow=args.shallow, seed=args.seed, thresholds=parse_thresholds(args.thresholds))
    plan.check()
    check_out(args.out)
    source = open_data(args.data)
    before = Labelling.of_faceset(source)
    try:
        after, changes = perturb(before, plan)
    except ConfigError as exc:  # what the data cannot give: name it
        raise ConfigError(f"{source.source}: {exc}") from None
    manifest = make_manifest(source, source_reference(args.data, args.out), plan, before, after, changes)
    print(f"perturbed {source.source}: {len(before):,} images, {len(before.names):,} identities -> "
          f"{len(after):,} images, {len(after.names):,} identities")
    for line in summary(changes, plan):
        print(line)
    print("before:")
    print(format_table(group_table(before.counts(), plan.thresholds), plan.thresholds))
    print("after:")
    print(format_table(group_table(after.counts(), plan.thresholds), plan.thresholds))
    path = write_perturbed(args.out, after.pairs(), manifest)
    print(f"wrote {path} and {args.out / 'manifest.json'}; open it as the dataset spec {args.out}")
    return 0


def summary(changes: dict, plan: Perturbation) -> list[str]:
    """One line per perturbation applied: what moved, how many."""
    lines = []
    if changes["split"] is not None:
        split = changes["split"]
        moved = [m for r in split["identities"] for m in r["moved"]]
        left_a = sum(r["images"] - sum(len(m["images"]) for m in r["moved"]) < plan.thresholds.a
                     for r in split["identities"])
        lines.append(f"split: {len(split['identities'])} of {split['eligible']} A identities, "
                     f"{sum(len(m['images']) for m in moved):,} images into {len(moved):,} new identities; "
                     f"{left_a} of the {len(split['identities'])} left group A")
    if changes["noise"] is not None:
        noise = changes["noise"]
        held = sum(len(r["images"]) for r in noise["outside"])
        lines.append(f"noise: {noise['noisy']:,} of {noise['tail_images']:,} tail images: "
                     f"{len(noise['relabelled']):,} relabelled (closed-set), {len(noise['replaced']):,} replaced by "
                     f"images of {len(noise['outside']):,} held-out identities ({held:,} images left out)")
    if changes["shallow"] is not None:
        dropped = changes["shallow"]["dropped"]
        lines.append(f"shallow: {sum(len(r['images']) for r in dropped):,} images dropped from {len(dropped):,} "
                     f"identities over {changes['shallow']['max']} images")
    return lines
