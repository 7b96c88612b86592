"""``tailface prepare {lfw,celeba-aligned,celeba-wild,celeba-train,all}``: aligned packs (112x112
ArcFace crops unless ``--template`` / ``--size`` say otherwise)."""

from __future__ import annotations

from pathlib import Path

from tailface.data.prepare import SETS, prepare
from tailface.data.templates import DEFAULT_TEMPLATE, template_names
from tailface.errors import ConfigError
from tailface.paths import prepared_path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare", help="align a real face set (112x112 ArcFace crops by default) and pack it",
        description="Align one of the real face sets under the faces root (five MTCNN landmarks -> "
                    "the alignment template, default ArcFace 112x112) and pack it as DIR/train.rec + "
                    "train.idx (+ alignment.json naming the template), DIR = $TAILFACE_DATA/<name> "
                    "(default ./data/<name>). Images without landmarks are aligned with the set's mean "
                    "landmarks. celeba-train merges both CelebA sets by identity number.")
    p.add_argument("name", choices=SETS + ("all",), help="set to prepare")
    p.add_argument("--faces", type=Path, default=None,
                   help="faces root (default: $TAILFACE_FACES or ../shared/data/faces)")
    p.add_argument("--out", type=Path, default=None,
                   help="output root: the pack goes to OUT/<name>/ (default: $TAILFACE_DATA or ./data)")
    p.add_argument("--size", type=int, default=None,
                   help="output side in pixels (default: the template's, 112 for arcface)")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, metavar="NAME",
                   help=f"alignment template: {', '.join(template_names())} (default {DEFAULT_TEMPLATE})")
    p.add_argument("--workers", type=int, default=2, help="alignment processes (default 2)")
    p.add_argument("--force", action="store_true", help="redo sets that are already prepared")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.size is not None and args.size < 16:
        raise ConfigError(f"--size must be at least 16, got {args.size}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    names = SETS if args.name == "all" else (args.name,)
    for name in names:
        out = args.out / name if args.out is not None else None
        s = prepare(name, root=args.faces, out=out, output_size=args.size, workers=args.workers,
                    force=args.force, progress=not args.no_progress, template=args.template)
        where = out if out is not None else prepared_path(name)
        note = f" ({s['skipped']})" if "skipped" in s else f" in {s['seconds']} s"
        print(f"{name}: {s['images']} images, {s['identities']} identities, {s.get('template', 'arcface')} "
              f"{s['size']}x{s['size']}, "
              f"{s['mean_landmark_fallback']} aligned with mean landmarks -> {where}{note}")
    return 0
