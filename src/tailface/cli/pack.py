"""``tailface pack DATA OUT.rec``: any dataset spec -> an InsightFace-layout RecordIO pack."""

from __future__ import annotations

import argparse
from pathlib import Path

from tailface.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pack", help="pack a dataset into an InsightFace .rec/.idx",
        description="Pack a dataset (any open_faceset spec: identity folders, list file, "
                    "celeba:IMAGE_DIR:IDENTITY_FILE, .rec, synthetic) into OUT.rec + OUT.idx in the "
                    "InsightFace layout, with classes.txt, image_ids.txt and property beside it. "
                    "JPEG and PNG images are copied byte for byte; others (and all with --reencode) "
                    "are written as JPEG at --quality.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="dataset spec")
    p.add_argument("out", type=Path, help="output .rec (its .idx is written beside it)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of re-encoded images (default 95)")
    p.add_argument("--reencode", action="store_true",
                   help="re-encode every image as JPEG at --quality instead of copying stored JPEG/PNG bytes")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out missing, empty or undecodable images (reported) instead of failing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from tailface.data.open import open_faceset
    from tailface.data.recordio import write_recordio

    if args.out.suffix != ".rec":
        raise ConfigError(f"{args.out}: the output must end in .rec")
    if not 1 <= args.quality <= 100:
        raise ConfigError(f"--quality must be in 1..100, got {args.quality}")
    kw = {"skip_bad": True} if args.skip_bad and args.data != "synthetic" else {}
    faceset = open_faceset(args.data, **kw)
    print(f"read {faceset.source}: {len(faceset)} images, {faceset.num_classes} classes")
    skipped_files = list(getattr(faceset, "skipped", []))
    missing = getattr(faceset, "missing", 0)
    if missing:
        print(f"  {missing} listed images absent from the image folder were left out")
    result = write_recordio(faceset, args.out, quality=args.quality, skip_bad=args.skip_bad,
                            progress=not args.no_progress, reencode=args.reencode)
    for image_id, why in (skipped_files + result.skipped)[:10]:
        print(f"  skipped {image_id}: {why}")
    n_skipped = len(skipped_files) + len(result.skipped)
    if n_skipped:
        from tailface.atomic import write_text

        report = args.out.with_name(args.out.stem + ".skipped.txt")
        write_text(report, "".join(f"{image_id}\t{why}\n" for image_id, why in skipped_files + result.skipped))
        print(f"  skipped {n_skipped} bad images in all, listed in {report}")
    print(f"wrote {result.path} (+ .idx): {result.num_images} images, {result.num_classes} classes")
    return 0

