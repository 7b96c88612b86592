"""``tailface embed MODEL DATA OUT.npz``: features of every image of a dataset (flip fusion); MODEL
is a tailface checkpoint (.pt) or an ONNX model (.onnx), through :func:`tailface.eval.embedder.load_embedder`.
The model's alignment template is compared with DATA's (:mod:`tailface.eval.alignment_check`): a
warning names both when they differ."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tailface.cli._model_args import MODEL_HELP, add_preprocessing_args, add_run_args, preprocessing_overrides
from tailface.data.faceset import FaceSet
from tailface.data.images import is_image_name, read_image
from tailface.data.open import open_faceset
from tailface.errors import DataError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "embed", help="extract features of a dataset with a trained checkpoint or an ONNX model",
        description="Write the features file OUT, an .npz archive written under exactly the name given (no "
                    "suffix added: name it *.npz, as `tailface eval --features` expects), with 'features' "
                    "(N x E float32, flip fusion: f(x) + f(mirror x)), "
                    "'image_ids' (in the dataset's order) and 'labels' (when DATA has identities). "
                    "DATA is any dataset spec (see `tailface analyze --help`) or a plain folder of "
                    "images without identity sub-folders (images found recursively, sorted). A model "
                    "trained on another alignment template than DATA's alignment.json records is warned "
                    "about (--template, --data-template).")
    p.add_argument("checkpoint", type=Path, metavar="model", help=MODEL_HELP)
    p.add_argument("data", help="dataset spec or plain image folder")
    p.add_argument("out", type=Path, metavar="OUT",
                   help="features file to write, e.g. features.npz (written as named; an existing file "
                        "tailface did not write is refused without --force)")
    p.add_argument("--no-flip", action="store_true", help="features of the image only, no mirror")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, default=0)
    add_run_args(p)
    p.add_argument("--force", action="store_true",
                   help="replace OUT even when it is not a features file tailface wrote (default: refuse)")
    add_preprocessing_args(p)
    p.set_defaults(func=run)


def has_top_level_images(path: Path) -> bool:
    return path.is_dir() and any(e.is_file() and is_image_name(e.name) for e in os.scandir(path))


def open_embed_data(spec: str) -> tuple[FaceSet, bool]:
    """``(faceset, labelled)``: a plain folder with images at its top level is read as unlabelled
    images (recursively); anything else goes to ``open_faceset``."""
    path = Path(spec)
    if has_top_level_images(path) and not (path / "train.rec").is_file():
        return PlainImageFolder(path), False
    return open_faceset(spec), True


class PlainImageFolder(FaceSet):
    """Every image under ``root`` (recursively, sorted), one dummy class; ids = relative paths."""

    def __init__(self, root: Path):
        self.root, self.source = Path(root), str(root)
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and is_image_name(p.name))
        if not files:
            raise DataError(f"{root}: no images found")
        self.paths = files
        self.image_ids = [p.relative_to(self.root).as_posix() for p in files]
        self.labels = np.zeros(len(files), dtype=np.int64)
        self.class_names = ["unlabelled"]

    def _read(self, i: int):
        return read_image(self.paths[i])


def run(args) -> int:
    # here, not at the top: the embedder loads torch (1.8 s measured); `tailface --help` stays light
    from tailface.eval.alignment_check import AlignmentCheck, data_template, model_template
    from tailface.eval.embedder import load_embedder
    from tailface.eval.features import check_features_target, save_features

    check_features_target(args.out, args.force)  # before any feature is extracted
    embedder = load_embedder(args.checkpoint, device=args.device, **preprocessing_overrides(args))
    faceset, labelled = open_embed_data(args.data)
    if Path(args.data).exists() or args.data_template is not None:  # not the built-in synthetic faces
        check = AlignmentCheck()
        check.set_model(model_template(str(args.checkpoint), embedder.preprocessing.template, args.template))
        check.compare(args.data, data_template(args.data, args.data_template))
    feats = embedder.extract(faceset, batch_size=args.batch_size, flip=not args.no_flip,
                             num_workers=args.num_workers, progress=not args.no_progress)
    save_features(args.out, feats, faceset.image_ids, faceset.labels if labelled else None)
    print(f"wrote {args.out}: {feats.shape[0]} x {feats.shape[1]} features"
          f"{'' if labelled else ' (no labels: plain image folder)'}; input {embedder.preprocessing.describe()}")
    return 0
