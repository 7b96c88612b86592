"""``tailface eval (CHECKPOINT | --features FILE.npz)``: evaluation protocols -> metrics.json."""

from __future__ import annotations

from pathlib import Path

from tailface.cli._model_args import MODEL_HELP, add_preprocessing_args, preprocessing_overrides
from tailface.errors import ConfigError
from tailface.locks import check_output_folder


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint or a features file",
        description="Run evaluation protocols (synthetic, blufr, lfw, megaface-proxy, heldout, "
                    "bin:PATH or PATH.bin for an InsightFace verification .bin, verification:DIR for every "
                    ".bin of a folder, ijbb:PATH / ijbc:PATH for an IJB-B / IJB-C release laid out as "
                    "distributed (1:1 and 1:N; modifiers +unitnorm, +nodetector)) on a model file, a "
                    "checkpoint (.pt) or an ONNX model (.onnx) (features extracted with flip fusion, LFW "
                    "features cached in OUT), or "
                    "on a features .npz; prints a table and writes OUT/metrics.json and plots. The "
                    "LFW protocols need the aligned LFW set from `tailface prepare lfw`. A model trained on "
                    "another alignment template than a pack's is warned about (--template, --data-template).")
    p.add_argument("checkpoint", nargs="?", type=Path, metavar="model", help=MODEL_HELP)
    p.add_argument("--features", type=Path, help="features .npz instead of a checkpoint")
    p.add_argument("--protocols", default=None,
                   help="comma-separated (default: synthetic for a checkpoint, "
                        "blufr,lfw,megaface-proxy for a features file)")
    p.add_argument("--out", type=Path, default=Path("runs/eval"),
                   help="output folder (default runs/eval, ignored by git like every run output)")
    p.add_argument("--lfw", type=Path, default=None, help="aligned LFW set (default data/lfw)")
    p.add_argument("--faces-root", type=Path, default=None, help="real data root (BLUFR config, pairs.txt)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-plots", action="store_true")
    add_preprocessing_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    # here, not at the top: the evaluation loads torch and scipy (1.9 s measured); `tailface --help` stays light
    from tailface.eval.api import evaluate_checkpoint, evaluate_features

    if (args.checkpoint is None) == (args.features is None):
        raise ConfigError("give either a MODEL (.pt or .onnx) or --features FILE.npz (exactly one)")
    check_output_folder(args.out)  # a file named by --out: refused before any feature is extracted
    if args.features is not None:
        evaluate_features(args.features, args.protocols or "blufr,lfw,megaface-proxy", args.out,
                          faces_root=args.faces_root, plots=not args.no_plots)
    else:
        evaluate_checkpoint(args.checkpoint, args.protocols or "synthetic", args.out, lfw=args.lfw,
                            faces_root=args.faces_root, batch_size=args.batch_size,
                            plots=not args.no_plots, data_template_name=args.data_template,
                            **preprocessing_overrides(args))
    print(f"wrote {args.out / 'metrics.json'}")
    return 0
