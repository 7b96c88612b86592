"""``tailface align IMAGES LANDMARKS OUT``: align any dataset with a five-point landmarks CSV."""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from tailface.data.align import AlignedFaceSet
from tailface.data.alignment_record import write_alignment
from tailface.data.images import encode_jpeg
from tailface.data.landmarks import read_landmarks
from tailface.data.open import open_faceset
from tailface.data.recordio import write_recordio
from tailface.data.templates import DEFAULT_TEMPLATE, get_template, template_names
from tailface.errors import ConfigError, DataError

_SHOWN = 10


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "align", help="align face images to a 5-point template (default ArcFace)",
        description="Align the images of IMAGES (any open_faceset spec) with the five landmarks of "
                    "LANDMARKS (CSV: [identity,]file,[score,]left_eye_x,left_eye_y,right_eye_x,... "
                    "as written for the faces root; rows matched on identity/file, else on file) "
                    "and write OUT: a .rec pack (--format rec) or a folder OUT/<identity>/<image>.jpg "
                    "(--format folder), with alignment.json naming the template beside it. Images "
                    "without landmarks are an error unless --fallback center-crop is given.")
    p.add_argument("images", help="dataset spec")
    p.add_argument("landmarks", type=Path, help="landmarks CSV")
    p.add_argument("out", type=Path, help="output .rec or folder")
    p.add_argument("--format", choices=("rec", "folder"), default=None,
                   help="output kind (default: rec when OUT ends in .rec, else folder)")
    p.add_argument("--fallback", choices=("center-crop",), default=None,
                   help="centre-crop images that have no landmarks instead of failing")
    p.add_argument("--size", type=int, default=None,
                   help="output side in pixels (default: the template's, 112 for arcface)")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, metavar="NAME",
                   help=f"alignment template: {', '.join(template_names())} (default {DEFAULT_TEMPLATE})")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    fmt = args.format or ("rec" if args.out.suffix == ".rec" else "folder")
    if fmt == "rec" and args.out.suffix != ".rec":
        raise ConfigError(f"{args.out}: a rec output must end in .rec")
    template = get_template(args.template)
    if args.size is not None and args.size < 16:
        raise ConfigError(f"--size must be at least 16, got {args.size}")
    size = template.output_size(args.size)
    faceset = open_faceset(args.images)
    table = read_landmarks(args.landmarks)
    points = table.lookup(faceset.image_ids)
    print(f"read {faceset.source}: {len(faceset):,} images, {faceset.num_classes:,} identities; "
          f"{len(table):,} landmark rows in {args.landmarks}")
    aligned = AlignedFaceSet(faceset, points, size, fallback="center-crop", template=template)
    if len(aligned.missing):
        listed = ", ".join(aligned.missing_ids(_SHOWN))
        more = " ..." if len(aligned.missing) > _SHOWN else ""
        message = (f"{len(aligned.missing)} of {len(faceset)} images have no landmarks in "
                   f"{args.landmarks}: {listed}{more}")
        if args.fallback is None:
            raise DataError(f"{message}; pass --fallback center-crop to centre-crop them")
        print(f"  {message}; centre-cropped")
    if fmt == "rec":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = write_recordio(aligned, args.out, quality=args.quality, progress=not args.no_progress)
        write_alignment(args.out.parent, template.name, size)
        print(f"wrote {result.path} (+ .idx): {result.num_images} images, {result.num_classes} classes, "
              f"{template.name} {size}x{size}")
    else:
        count = write_folder(aligned, args.out, args.quality, progress=not args.no_progress)
        write_alignment(args.out, template.name, size)
        print(f"wrote {count} images to {args.out}/<identity>/, {template.name} {size}x{size}")
    return 0


def write_folder(faceset, out: Path, quality: int, progress: bool = True) -> int:
    """``out/<identity>/<image stem>.jpg`` for every image (written under a temporary name first)."""
    targets = [out / faceset.class_names[label] / (Path(image_id).stem + ".jpg")
               for label, image_id in zip(faceset.labels, faceset.image_ids)]
    if len(set(targets)) != len(targets):
        raise DataError(f"{faceset.source}: two images of one identity share a file name; "
                        f"write a .rec instead")
    for i in tqdm(range(len(faceset)), desc=f"aligning into {out}", unit="img", disable=not progress):
        target = targets[i]
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(encode_jpeg(faceset.read(i), quality))
        os.replace(tmp, target)
    return len(targets)
