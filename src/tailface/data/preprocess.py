"""Images -> network input: the one description of a model's preprocessing, and flip fusion.

A model's input is built from the FaceSet's ``HxWx3`` uint8 RGB images, resized to ``size``
(bilinear, only when the size differs) and stacked as uint8 ``Bx3xHxW`` by
:func:`tailface.data.tensors.load_images`; then :meth:`Preprocessing.to_input` puts the channels in
the model's order (RGB or BGR) and normalises each channel ``c``, in float32, as::

    input[c] = (x[c] - mean[c]) / std[c]          (subtract, then divide: :func:`normalize_pixels`)

tailface's models: ``mean = 127.5``, ``std = 128``, RGB (:data:`TAILFACE_PREPROCESSING`; values in
about ``[-1, 1]``; InsightFace's own models use ``std = 127.5``). The formula is written once and
serves two backends:

- a torch tensor (training on the device, :func:`tailface.eval.features.extract_features`): the
  result is a float32 tensor on the same device; the constants are Python numbers when all three
  channels share them (the tailface default: ``(x.float() - 127.5) / 128``, no constant tensor
  sent to the device per batch), else ``1x3x1x1`` float32 tensors on the batch's device;
- a NumPy array (onnxruntime, the generic :class:`tailface.eval.embedder.Embedder`): a contiguous
  float32 array; the constants are ``1x3x1x1`` float32 arrays.

Both give the same float32 numbers for the same image (tested).

Flip fusion: the feature of an image is ``f(x) + f(mirror x)`` (summed, not normalised), mirror =
the width axis reversed. :func:`flip_fusion` computes it with one call of the model on the batch
followed by its mirror (``2B`` rows), then adds rows ``i`` and ``B + i``; the same function serves a
torch module, a NumPy callable (onnxruntime) and the graph of ``tailface export --flip-fusion``.

The record is also what an ONNX export says about its input: :meth:`Preprocessing.metadata` writes
the ``tailface.*`` keys of :data:`INPUT_METADATA`, which :func:`read_metadata` reads back.

``template``: the alignment template (:mod:`tailface.data.templates`) of the crops the model was
trained on, the geometry its input images should have (None: not recorded, e.g. a checkpoint
written before issue 23 or a foreign ONNX model; evaluation then assumes ``arcface`` and says so).
It is not applied here (images arrive aligned); it is written as ``tailface.template`` (only when
known) and compared with the evaluation data's template (:mod:`tailface.eval.alignment_check`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar, overload

import numpy as np
import torch

from tailface.data.templates import check_template_name
from tailface.errors import ConfigError

#: tailface's normalisation: subtracted from the 0-255 pixels, then divided by (every channel).
MEAN = 127.5
STD = 128.0

#: ``metadata_props`` keys of an ONNX export that describe its input (values are strings), as
#: :meth:`Preprocessing.metadata` writes them.
INPUT_METADATA = {
    "tailface.input_size": "H,W of the input images, e.g. '112,112'",
    "tailface.input_layout": "NCHW float32, batch axis dynamic",
    "tailface.channel_order": "RGB or BGR: the order of the 3 input channels",
    "tailface.mean": "per channel (model's order) value subtracted from the 0-255 pixels",
    "tailface.std": "per channel divisor applied after subtracting the mean",
    "tailface.flip_fusion": "true when the graph already returns f(x) + f(mirror x)",
    "tailface.template": "alignment template of the training crops (tailface.data.templates); absent when unknown",
}

Batch = TypeVar("Batch", torch.Tensor, np.ndarray)


def normalize_pixels(x: Batch, mean, std) -> Batch:
    """``(x - mean) / std``: the one normalisation formula, for a float32 torch tensor or NumPy
    array ``x`` and constants of the same backend (numbers, or ``1x3x1x1`` per channel)."""
    return (x - mean) / std


def mirror(x: Batch) -> Batch:
    """``x`` (``Bx3xHxW``) mirrored left-right: the width axis reversed."""
    return x.flip(-1) if isinstance(x, torch.Tensor) else x[..., ::-1]


def flip_fusion(forward: Callable[[Batch], Batch], x: Batch) -> Batch:
    """``forward(x) + forward(mirror x)`` for a batch ``x`` (torch tensor or NumPy array): one call
    of ``forward`` on ``[x; mirror x]`` (``2B`` rows), then rows ``i`` and ``B + i`` summed."""
    n = x.shape[0]
    both = forward(torch.cat([x, mirror(x)]) if isinstance(x, torch.Tensor) else np.concatenate([x, mirror(x)]))
    return both[:n] + both[n:]


def _format(values) -> str:
    return ",".join(f"{v:g}" for v in values)


@dataclass(frozen=True)
class Preprocessing:
    """uint8 RGB images -> model input: resize to ``size``, ``channel_order``, ``(x - mean) / std``."""

    size: tuple[int, int]                       # (height, width)
    mean: tuple[float, float, float] = (MEAN, MEAN, MEAN)
    std: tuple[float, float, float] = (STD, STD, STD)
    channel_order: str = "RGB"                  # RGB or BGR
    template: str | None = None                 # alignment template of the crops (None: not recorded)

    def describe(self) -> str:
        def v(t):
            return f"{t[0]:g}" if len(set(t)) == 1 else _format(t)

        crop = f", {self.template} crops" if self.template is not None else ""
        return f"{self.size[0]}x{self.size[1]} {self.channel_order}, (x - {v(self.mean)}) / {v(self.std)}{crop}"

    @overload
    def to_input(self, images: torch.Tensor) -> torch.Tensor: ...

    @overload
    def to_input(self, images: np.ndarray) -> np.ndarray: ...

    def to_input(self, images):
        """uint8 ``Bx3xHxW`` RGB images (at :attr:`size`) -> float32 ``Bx3xHxW`` model input: a torch
        tensor on the images' device for a tensor, else a contiguous NumPy array."""
        if isinstance(images, torch.Tensor):
            x = images.float()
            if self.channel_order == "BGR":
                x = x.flip(1)
            if len(set(self.mean)) == 1 and len(set(self.std)) == 1:
                return normalize_pixels(x, self.mean[0], self.std[0])
            mean, std = (torch.tensor(t, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
                         for t in (self.mean, self.std))
            return normalize_pixels(x, mean, std)
        a = np.asarray(images, dtype=np.float32)
        if self.channel_order == "BGR":
            a = a[:, ::-1]
        mean_a, std_a = (np.asarray(t, np.float32).reshape(1, 3, 1, 1) for t in (self.mean, self.std))
        return np.ascontiguousarray(normalize_pixels(a, mean_a, std_a))

    def metadata(self, flip_fusion: bool = False) -> dict[str, str]:
        """The :data:`INPUT_METADATA` of an ONNX graph that takes this input (``flip_fusion``: the
        graph returns ``f(x) + f(mirror x)`` itself; ``tailface.template`` only when known)."""
        meta = {
            "tailface.input_size": f"{self.size[0]},{self.size[1]}",
            "tailface.input_layout": "NCHW",
            "tailface.channel_order": self.channel_order,
            "tailface.mean": _format(self.mean),
            "tailface.std": _format(self.std),
            "tailface.flip_fusion": "true" if flip_fusion else "false",
        }
        if self.template is not None:
            meta["tailface.template"] = self.template
        return meta


TAILFACE_PREPROCESSING = Preprocessing((112, 112))


def read_metadata(meta) -> dict:
    """What an ONNX model's ``metadata_props`` say about its input, read back from the keys
    :meth:`Preprocessing.metadata` writes: ``size``, ``mean``, ``std``, ``channel_order``,
    ``template`` (the strings, None where absent; parse them with :func:`with_overrides`) and
    ``flip_fusion`` (bool, false where absent)."""
    return {"size": meta.get("tailface.input_size"), "mean": meta.get("tailface.mean"),
            "std": meta.get("tailface.std"), "channel_order": meta.get("tailface.channel_order"),
            "template": meta.get("tailface.template"),
            "flip_fusion": meta.get("tailface.flip_fusion", "false").lower() == "true"}


def _numbers(value, cast, count: int, what: str, form: str) -> list:
    """``value`` (a number, a string of numbers split by commas or spaces, or a sequence) as
    ``count`` numbers of type ``cast``; a single number is repeated ``count`` times."""
    items = value.replace(",", " ").split() if isinstance(value, str) else (
        list(value) if isinstance(value, (list, tuple)) else [value])
    try:
        numbers = [cast(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be {form}, got {value!r}") from None
    if len(numbers) == 1:
        numbers *= count
    if len(numbers) != count:
        raise ConfigError(f"{what} must be {form}, got {value!r}")
    return numbers


def parse_triple(value, what: str) -> tuple[float, float, float]:
    """``127.5``, ``"127.5"``, ``"127.5,127.5,127.5"`` or a sequence of 1 or 3 numbers -> 3 floats."""
    a, b, c = _numbers(value, float, 3, what, "a number or 3 comma-separated numbers")
    return (a, b, c)


def parse_size(value, what: str = "input size") -> tuple[int, int]:
    """``112``, ``"112"``, ``"112,96"`` (H,W), ``"112x96"`` or ``(h, w)`` -> (h, w)."""
    text = value.replace("x", ",") if isinstance(value, str) else value
    h, w = _numbers(text, int, 2, what, "N or H,W")
    if min(h, w) <= 0:
        raise ConfigError(f"{what} must be N or H,W (positive), got {value!r}")
    return (h, w)


def parse_channel_order(value) -> str:
    order = str(value).upper()
    if order not in ("RGB", "BGR"):
        raise ConfigError(f"channel order must be RGB or BGR, got {value!r}")
    return order


def with_overrides(base: Preprocessing, size=None, mean=None, std=None, channel_order=None,
                   template=None) -> Preprocessing:
    """``base`` with every given (not None) value replaced (text or numbers, as on the command line;
    a template name must be registered: :class:`ConfigError` listing the known ones)."""
    changes: dict = {}
    if size is not None:
        changes["size"] = parse_size(size)
    if mean is not None:
        changes["mean"] = parse_triple(mean, "mean")
    if std is not None:
        changes["std"] = parse_triple(std, "std")
        if min(changes["std"]) <= 0:
            raise ConfigError(f"std must be positive, got {std!r}")
    if channel_order is not None:
        changes["channel_order"] = parse_channel_order(channel_order)
    if template is not None:
        changes["template"] = check_template_name(template)
    return replace(base, **changes)
