"""``tailface pack DATA OUT.rec``: any dataset spec -> an InsightFace-layout RecordIO pack;
``tailface pack DATA --bin OUT.bin``: the pairs of LFW's pairs.txt -> an InsightFace verification .bin."""

from __future__ import annotations

import argparse
from pathlib import Path

from tailface.atomic import write_text
from tailface.data.open import open_faceset
from tailface.data.recordio import write_recordio
from tailface.data.verification_bin import pack_pairs_bin
from tailface.errors import ConfigError
from tailface.eval.lfw_pairs import read_pairs


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pack", help="pack a dataset into an InsightFace .rec/.idx",
        description="Pack a dataset (any open_faceset spec: identity folders, list file, "
                    "celeba:IMAGE_DIR:IDENTITY_FILE, .rec, synthetic) into OUT.rec + OUT.idx in the "
                    "InsightFace layout, with classes.txt, image_ids.txt and property beside it. "
                    "JPEG and PNG images are copied byte for byte; others (and all with --reencode) "
                    "are written as JPEG at --quality. With --bin OUT.bin instead of OUT.rec: an "
                    "InsightFace verification .bin (pickled (images, issame_list), 2 images per pair) of "
                    "the pairs in --pairs (default: LFW's pairs.txt under the real data root), the images "
                    "taken from DATA by image id (e.g. the aligned LFW set of `tailface prepare lfw`).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="dataset spec")
    p.add_argument("out", type=Path, nargs="?", help="output .rec (its .idx is written beside it)")
    p.add_argument("--bin", type=Path, default=None, metavar="OUT.bin",
                   help="write a verification .bin of --pairs instead of a .rec")
    p.add_argument("--pairs", type=Path, default=None,
                   help="pairs file in LFW's pairs.txt format (default: <faces root>/lfw/pairs.txt)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of re-encoded images (default 95)")
    p.add_argument("--reencode", action="store_true",
                   help="re-encode every image as JPEG at --quality instead of copying stored JPEG/PNG bytes")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out missing, empty or undecodable images (reported) instead of failing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    if (args.out is None) == (args.bin is None):
        raise ConfigError("give either OUT.rec or --bin OUT.bin (exactly one)")
    if args.bin is not None:
        return run_bin(args)
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
        report = args.out.with_name(args.out.stem + ".skipped.txt")
        write_text(report, "".join(f"{image_id}\t{why}\n" for image_id, why in skipped_files + result.skipped))
        print(f"  skipped {n_skipped} bad images in all, listed in {report}")
    print(f"wrote {result.path} (+ .idx): {result.num_images} images, {result.num_classes} classes")
    return 0



def run_bin(args) -> int:
    if args.bin.suffix != ".bin":
        raise ConfigError(f"{args.bin}: the output must end in .bin")
    pairs = read_pairs(args.pairs)
    faceset = open_faceset(args.data)
    path, n = pack_pairs_bin(faceset, pairs, args.bin, quality=args.quality)
    print(f"wrote {path}: {n} pairs ({int(pairs.same.sum())} same), {2 * n} images from {faceset.source}, "
          f"pairs from {pairs.source}")
    return 0
