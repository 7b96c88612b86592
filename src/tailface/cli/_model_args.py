"""Command-line options shared by the commands that take a model file (``embed``, ``eval``):
``--device`` and ``--no-progress`` (:func:`add_run_args`); ``--input-size``, ``--mean``, ``--std``,
``--bgr``, ``--template`` override the preprocessing that a ``.pt`` checkpoint or an ``.onnx``
model's metadata gives (see :mod:`tailface.eval.embedder`);
``--data-template`` names the template the evaluation data was cut with, over its pack's record
(:mod:`tailface.eval.alignment_check`)."""

from __future__ import annotations

import argparse
import re

from tailface.data.templates import template_names

MODEL_HELP = ("model file: a tailface checkpoint (.pt) or an ONNX face model (.onnx; its preprocessing from "
              "the tailface metadata of `tailface export`, or from --input-size/--mean/--std/--bgr)")


def device_name(text: str) -> str | None:
    """``--device``: auto (None: CUDA when available), cpu, cuda or cuda:N; argparse names the flag
    when the text is none of them."""
    if text == "auto":
        return None
    if text in ("cpu", "cuda") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")


def add_run_args(p) -> None:
    """``--device`` and ``--no-progress``, as the training commands spell them."""
    p.add_argument("--device", type=device_name, default=None, metavar="auto|cpu|cuda[:N]",
                   help="where the model runs (default auto: cuda when available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for a log file)")


def add_preprocessing_args(p) -> None:
    g = p.add_argument_group("preprocessing (override the model file's; needed for a foreign .onnx without "
                             "tailface metadata)")
    g.add_argument("--input-size", default=None, metavar="N|H,W", help="input image size (bilinear resize)")
    g.add_argument("--mean", default=None, metavar="M|R,G,B",
                   help="subtracted from 0-255 pixels, per channel in the model's order (tailface: 127.5)")
    g.add_argument("--std", default=None, metavar="S|R,G,B",
                   help="divisor after the mean (tailface: 128; InsightFace models: 127.5)")
    order = g.add_mutually_exclusive_group()
    order.add_argument("--bgr", dest="channel_order", action="store_const", const="BGR", default=None,
                       help="the model takes BGR channels")
    order.add_argument("--rgb", dest="channel_order", action="store_const", const="RGB",
                       help="the model takes RGB channels (the default of models without metadata)")
    names = ", ".join(template_names())
    g.add_argument("--template", default=None, metavar="NAME",
                   help=f"alignment template (crop geometry) the model was trained on: {names} (default: what "
                        "the model file records, else arcface); raw inputs are aligned with it and a pack cut "
                        "with another is warned about")
    g.add_argument("--data-template", default=None, metavar="NAME",
                   help="alignment template the evaluation images were cut with, over their pack's record "
                        "(default: the pack's alignment.json, else arcface)")


def preprocessing_overrides(args) -> dict:
    return {"size": args.input_size, "mean": args.mean, "std": args.std, "channel_order": args.channel_order,
            "template": args.template}
