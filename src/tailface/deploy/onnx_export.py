"""A tailface checkpoint's backbone -> ONNX, with its preprocessing in the model's metadata.

The graph takes float32 ``Nx3xHxW`` (batch axis dynamic, named ``batch``) already normalised as
the metadata says (``tailface.mean`` / ``tailface.std`` per channel in ``tailface.channel_order``:
tailface models are :data:`tailface.data.preprocess.TAILFACE_PREPROCESSING`) and returns ``NxE``
features, not L2-normalised. The input keys of the metadata are written by that record
(``Preprocessing.metadata``), at the checkpoint's image size, with ``tailface.template`` = the
alignment template the checkpoint records (absent when it records none). By default the graph is the backbone
alone (``tailface.flip_fusion=false``: a caller that wants flip fusion runs the mirrored image too
and sums); with ``flip_fusion=True`` the graph returns ``f(x) + f(mirror x)`` itself
(``tailface.flip_fusion=true``), traced from :func:`tailface.data.preprocess.flip_fusion` (one
backbone pass over the batch and its mirror).

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)`` by default. With
torch 2.13 it exports every registered backbone (small, resnet34, iresnet50, iresnet100,
mobilefacenet) in 1-7 s on 2 CPU cores and needs only ``onnx``; the ``torch.export``-based
exporter (``exporter="dynamo"``, torch's default since 2.9) gives the same parity but takes 3-6
times longer here and needs ``onnxscript``; both are in the ``onnx`` extra. torch 2.13 marks the
TorchScript exporter deprecated; when a torch release removes it, use ``--exporter dynamo``.

``onnx`` and ``onnxruntime`` are imported inside the functions that use them: they are the optional
``onnx`` extra, and :func:`require_export_packages` names it when they are missing.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import tailface
from tailface.data import preprocess  # the module: export_onnx's flip_fusion argument is a flag
from tailface.errors import ConfigError, TailfaceError
from tailface.eval.embedder import ONNX_EXTRA
from tailface.train.checkpoint import checkpoint_image_size, checkpoint_template, load_model

EXPORTERS = ("torchscript", "dynamo")
INPUT_NAME, OUTPUT_NAME = "input", "embedding"


@dataclass
class ExportResult:
    path: Path
    metadata: dict[str, str]
    max_abs_diff: float | None  # onnxruntime vs PyTorch on a check batch (None: not checked)
    max_abs_value: float | None = None  # largest |feature| of that batch (the scale of the difference)


def require_export_packages(exporter: str) -> None:
    missing = []
    for name in ("onnx", "onnxruntime") + (("onnxscript",) if exporter == "dynamo" else ()):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise TailfaceError(f"ONNX export needs the optional package(s) {', '.join(missing)}: {ONNX_EXTRA}")


class FlipFused(nn.Module):
    """``f(x) + f(mirror x)``: the mirrored pass folded into the graph
    (:func:`tailface.data.preprocess.flip_fusion`)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return preprocess.flip_fusion(self.inner, x)


def export_module(module, out: Path, size: tuple[int, int], exporter: str = "torchscript", opset: int = 17) -> None:
    """``torch.onnx.export`` of ``module`` (eval mode) with a dynamic batch axis into ``out``."""
    example = torch.zeros(2, 3, *size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, tracer warnings
        if exporter == "dynamo":
            torch.onnx.export(module, (example,), str(out), dynamo=True, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=max(opset, 18), external_data=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        else:
            torch.onnx.export(module, (example,), str(out), dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})


def write_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Set ``metadata_props`` of the ONNX file at ``path`` (in place, atomically)."""
    import onnx  # optional extra: tailface[onnx]

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=str(value))
    model.producer_name = "tailface"
    model.producer_version = tailface.__version__
    onnx.checker.check_model(model)
    tmp = path.with_name(path.name + ".meta.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def export_onnx(checkpoint, out, *, flip_fusion: bool = False, exporter: str = "torchscript", opset: int = 17,
                check: bool = True) -> ExportResult:
    """Export the backbone of ``checkpoint`` (a ``.pt`` written by tailface) to ``out`` (.onnx)."""
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"{out}: the output must end in .onnx")
    require_export_packages(exporter)
    model, meta = load_model(checkpoint)
    size = checkpoint_image_size(meta)
    module = FlipFused(model).eval() if flip_fusion else model.eval()
    with torch.inference_mode():
        probe = torch.zeros(1, 3, *size)
        embedding_size = int(module(probe).shape[1])
    spec = meta.get("model_spec") or {}
    metadata = {
        "tailface.version": tailface.__version__,
        "tailface.model": str(spec.get("name", "")),
        "tailface.source": Path(checkpoint).name,
        **replace(preprocess.TAILFACE_PREPROCESSING, size=size,
                  template=checkpoint_template(meta)).metadata(flip_fusion),
        "tailface.embedding_size": str(embedding_size),
        "tailface.output_normalized": "false",
        "tailface.exporter": exporter,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        export_module(module, tmp, size, exporter, opset)
        write_metadata(tmp, metadata)
        os.replace(tmp, out)
    except TailfaceError:
        raise
    except Exception as exc:  # the exporters raise many types
        raise TailfaceError(f"{checkpoint}: ONNX export with the {exporter} exporter failed "
                            f"({type(exc).__name__}: {exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    diff, scale = check_export(module, out, size) if check else (None, None)
    return ExportResult(out, metadata, diff, scale)


def check_export(module, path: Path, size: tuple[int, int], n: int = 3) -> tuple[float, float]:
    """(max abs difference of onnxruntime vs PyTorch outputs, max abs PyTorch output) on ``n``
    fixed pseudo-random noise images (batch size ``n``, which also checks the dynamic batch axis)."""
    import onnxruntime as ort  # optional extra: tailface[onnx]

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, *size), dtype=np.uint8)
    x = preprocess.TAILFACE_PREPROCESSING.to_input(images)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.inference_mode():
        want = module(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max()), float(np.abs(want).max())
