"""``tailface eval (CHECKPOINT | --features FILE.npz)``: evaluation protocols -> metrics.json.

Without ``--protocols`` a model gets, and the command says which and why (:func:`default_protocols`):
``synthetic`` when it was trained on the built-in synthetic data (or is a checkpoint that records no
training set), else (a face model: trained on images, or any ONNX model) the real-face protocols
whose data is there (``megaface-proxy`` needs the aligned LFW pack of ``tailface prepare lfw``,
``lfw`` also its pairs.txt, ``blufr`` also the BLUFR configuration, both under the faces root), else
``synthetic`` with the reason. A features file gets ``blufr,lfw,megaface-proxy``."""

from __future__ import annotations

import sys
from pathlib import Path

from tailface.cli._model_args import MODEL_HELP, add_preprocessing_args, add_run_args, preprocessing_overrides
from tailface.errors import ConfigError
from tailface.locks import check_output_folder
from tailface.paths import faces_root, prepared_path

FEATURES_DEFAULT = "blufr,lfw,megaface-proxy"


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
                   help="comma-separated (default for a model: synthetic when it was trained on the built-in "
                        "synthetic data, else blufr,lfw,megaface-proxy as far as their data is prepared "
                        "(`tailface prepare lfw`; the faces root's LFW pairs.txt and BLUFR configuration), else "
                        f"synthetic; the command says which ran and why; for a features file: {FEATURES_DEFAULT})")
    p.add_argument("--out", type=Path, default=Path("runs/eval"),
                   help="output folder (default runs/eval, ignored by git like every run output)")
    p.add_argument("--lfw", type=Path, default=None,
                   help="aligned LFW set (default $TAILFACE_DATA/lfw, else ./data/lfw: where `tailface prepare lfw` "
                        "writes it)")
    p.add_argument("--faces-root", type=Path, default=None, help="real data root (BLUFR config, pairs.txt)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-plots", action="store_true")
    add_run_args(p)
    add_preprocessing_args(p)
    p.set_defaults(func=run)


def training_source(model: Path) -> str | None:
    """The training set a tailface checkpoint records (``meta["source"]``), ``"onnx"`` for an ONNX
    model (a face model from elsewhere), None for a checkpoint that records none."""
    from tailface.train.checkpoint import load_checkpoint  # torch: here, not at the top (`--help` stays light)

    if model.suffix == ".onnx":
        return "onnx"
    source = load_checkpoint(model).get("meta", {}).get("source")
    return None if source is None else str(source)


def default_protocols(model: Path, lfw: Path | None, root: Path | None) -> tuple[str, str]:
    """``(protocols, why)`` of ``tailface eval MODEL`` without ``--protocols`` (see the module docstring)."""
    source = training_source(model)
    if source is None:
        return "synthetic", "the checkpoint records no training set"
    if source.startswith("<synthetic"):
        return "synthetic", "the model was trained on the built-in synthetic data"
    pack = lfw if lfw is not None else prepared_path("lfw")
    if not pack.exists():
        return "synthetic", (f"no aligned LFW set at {pack} for the real-face protocols blufr, lfw, megaface-proxy: "
                             "run `tailface prepare lfw` (or pass --lfw DIR)")
    root = root if root is not None else faces_root()
    needs = {"blufr": root / "blufr" / "blufr_lfw_config.mat", "lfw": root / "lfw" / "pairs.txt"}
    chosen = [name for name, path in needs.items() if path.is_file()] + ["megaface-proxy"]
    missing = "".join(f"; {name} left out: no {path}" for name, path in needs.items() if not path.is_file())
    return ",".join(chosen), f"a face model, and the aligned LFW set is prepared at {pack}{missing}"


def run(args) -> int:
    # here, not at the top: the evaluation loads torch and scipy (1.9 s measured); `tailface --help` stays light
    from tailface.eval.api import evaluate_checkpoint, evaluate_features

    if (args.checkpoint is None) == (args.features is None):
        raise ConfigError("give either a MODEL (.pt or .onnx) or --features FILE.npz (exactly one)")
    check_output_folder(args.out)  # a file named by --out: refused before any feature is extracted
    if args.features is not None:
        evaluate_features(args.features, args.protocols or FEATURES_DEFAULT, args.out,
                          faces_root=args.faces_root, plots=not args.no_plots)
    else:
        protocols = args.protocols
        if protocols is None:
            protocols, why = default_protocols(args.checkpoint, args.lfw, args.faces_root)
            print(f"tailface eval: protocols {protocols} (the default: {why}; --protocols chooses)",
                  file=sys.stderr, flush=True)
        evaluate_checkpoint(args.checkpoint, protocols, args.out, lfw=args.lfw,
                            faces_root=args.faces_root, batch_size=args.batch_size,
                            plots=not args.no_plots, data_template_name=args.data_template,
                            device=args.device, progress=not args.no_progress, **preprocessing_overrides(args))
    print(f"wrote {args.out / 'metrics.json'}")
    return 0
