"""The one seam between a face model file and features: :func:`load_embedder`.

``load_embedder(path, *, size=None, mean=None, std=None, channel_order=None, template=None) -> Embedder`` opens a
tailface checkpoint (``.pt``) or any ONNX face model (``.onnx``). An :class:`Embedder` knows the
input image size and the preprocessing its model expects and extracts features::

    emb = load_embedder("model.onnx")
    feats = emb.extract(faceset, batch_size=256, flip=True)   # float32 N x E, in the set's order

Preprocessing (:class:`Preprocessing`): images come from the FaceSet as ``HxWx3`` uint8 RGB, are
resized (bilinear, only when the size differs: :func:`tailface.data.tensors.load_images`), put in
the model's channel order and normalised per channel as ``(x - mean[c]) / std[c]``, in NCHW
float32 (the record and its one formula: :mod:`tailface.data.preprocess`). A tailface model is
``(x - 127.5) / 128``, RGB (:data:`TAILFACE_PREPROCESSING`). Flip fusion (``flip=True``) is
``f(x) + f(mirror x)``, summed, not normalised: :func:`tailface.data.preprocess.flip_fusion`, the
function :func:`tailface.eval.features.extract_features` uses; a model whose graph already includes
the mirrored pass (``tailface.flip_fusion=true`` in its metadata) is run once per image.

Where the preprocessing comes from, in order: the keyword arguments (the command line's
``--input-size``, ``--mean``, ``--std``, ``--bgr``) win; then, for ``.pt``, the checkpoint's image
size and tailface's normalisation; for ``.onnx``, the ``tailface.*`` metadata_props that
``tailface export`` writes (:data:`METADATA_KEYS`). A foreign ONNX model without that metadata
needs ``mean`` and ``std`` (there is no safe default: InsightFace's models use 127.5 / 127.5, ours
127.5 / 128), takes RGB unless ``channel_order="BGR"``, and takes its size from the graph's input
shape when that is fixed (else ``size`` is needed); a :class:`ConfigError` names the missing flags.

The record also carries the model's alignment template (``Preprocessing.template``: the crop
geometry it was trained on): ``template=`` (``--template``) wins, then the checkpoint's
``alignment_template`` / the ONNX ``tailface.template``; None when neither says (evaluation then
assumes ``arcface`` and says so, :mod:`tailface.eval.alignment_check`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tailface.data.faceset import FaceSet
from tailface.data.preprocess import (
    INPUT_METADATA,
    TAILFACE_PREPROCESSING,
    Preprocessing,
    flip_fusion,
    parse_size,
    read_metadata,
    with_overrides,
)
from tailface.data.tensors import EvalBatches
from tailface.errors import ConfigError, DataError, TailfaceError
from tailface.eval.features import extract_features
from tailface.fingerprints import file_print
from tailface.train.checkpoint import checkpoint_image_size, checkpoint_template, load_model

ONNX_EXTRA = "pip install 'tailface[onnx]'"

#: metadata_props keys of a tailface ONNX export (values are strings): the input's
#: (:data:`tailface.data.preprocess.INPUT_METADATA`, written by ``Preprocessing.metadata``) and the output's.
METADATA_KEYS = {
    **INPUT_METADATA,
    "tailface.embedding_size": "output features per image",
    "tailface.model": "backbone name",
}


class Embedder:
    """A face model with its preprocessing. Subclasses implement :meth:`forward`."""

    preprocessing: Preprocessing
    source: str
    flip_fused: bool = False   # the model's output already is f(x) + f(mirror x)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.preprocessing.size

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """float32 ``Bx3xHxW`` preprocessed inputs -> float32 ``BxE`` outputs."""
        raise NotImplementedError

    def embed_batch(self, images, flip: bool = True) -> np.ndarray:
        """uint8 ``Bx3xHxW`` RGB images (at :attr:`image_size`) -> float32 ``BxE`` features."""
        x = self.preprocessing.to_input(np.asarray(images))
        return flip_fusion(self.forward, x) if flip and not self.flip_fused else self.forward(x)

    def extract(self, faceset: FaceSet, batch_size: int = 256, flip: bool = True, num_workers: int = 0,
                progress: bool = True) -> np.ndarray:
        """float32 ``N x E`` features of every image of ``faceset``, in its order (flip fusion
        ``f(x) + f(mirror x)`` when ``flip``)."""
        if self.flip_fused and not flip:
            raise ConfigError(f"{self.source}: this model fuses the mirrored image in its graph "
                              "(tailface.flip_fusion=true); it cannot give features without flip")
        loader = torch.utils.data.DataLoader(EvalBatches(faceset, self.image_size, batch_size), batch_size=None,
                                             num_workers=num_workers)
        out = [self.embed_batch(images.numpy(), flip)
               for images in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=False)]
        if not out:
            raise DataError(f"{faceset.source}: no images to embed")
        return np.concatenate(out).astype(np.float32, copy=False)

    def describe(self) -> str:
        return f"{self.source}: {self.preprocessing.describe()}" + (", flip fused" if self.flip_fused else "")


class TorchEmbedder(Embedder):
    """A tailface checkpoint's backbone (or any ``nn.Module``). With tailface's own preprocessing,
    :meth:`extract` is exactly :func:`tailface.eval.features.extract_features`."""

    def __init__(self, model, preprocessing: Preprocessing, source: str = "model", device=None):
        self.model, self.preprocessing, self.source = model.eval(), preprocessing, source
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(inputs).to(self.device)).float().cpu().numpy()

    def extract(self, faceset: FaceSet, batch_size: int = 256, flip: bool = True, num_workers: int = 0,
                progress: bool = True) -> np.ndarray:
        if replace(self.preprocessing, template=None) == replace(TAILFACE_PREPROCESSING, size=self.preprocessing.size):
            return extract_features(self.model, faceset, self.image_size, batch_size, flip=flip,
                                    num_workers=num_workers, device=self.device, progress=progress)
        return super().extract(faceset, batch_size, flip, num_workers, progress)


def require_onnx(what: str = "ONNX models"):
    """Import onnxruntime, or a TailfaceError naming the extra to install (imported here, not at
    the top: it is an optional extra, needed only for ``.onnx`` models)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise TailfaceError(f"{what} need the optional package onnxruntime "
                            f"({exc.name} is missing): {ONNX_EXTRA}") from None
    return onnxruntime


class OnnxEmbedder(Embedder):
    """An ONNX model run by onnxruntime (CPU, or CUDA when that provider is available)."""

    def __init__(self, path, preprocessing: Preprocessing, flip_fused: bool = False, session=None):
        self.source, self.preprocessing, self.flip_fused = str(path), preprocessing, flip_fused
        if session is None:
            session = onnx_session(path)
        self.session = session
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise DataError(f"{path}: expected one NCHW image input, the model has "
                            f"{[(i.name, i.shape) for i in inputs]}")
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        h, w = preprocessing.size
        if shape[1] not in (3, None) and isinstance(shape[1], int):
            raise DataError(f"{path}: input {self.input_name} has {shape[1]} channels, expected 3 (NCHW)")
        if all(isinstance(s, int) for s in shape[2:]) and tuple(shape[2:]) != (h, w):
            raise ConfigError(f"{path}: the model's input is {shape[2]}x{shape[3]} but the preprocessing "
                              f"says {h}x{w} (--input-size)")

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None or len(inputs) == self.fixed_batch:
            return self._run(inputs)
        n, b = len(inputs), self.fixed_batch
        pad = (-n) % b
        padded = np.concatenate([inputs, np.zeros((pad, *inputs.shape[1:]), inputs.dtype)]) if pad else inputs
        return np.concatenate([self._run(padded[i: i + b]) for i in range(0, len(padded), b)])[:n]

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: x})[0]
        out = np.asarray(out, dtype=np.float32)
        return out.reshape(len(x), -1)


def onnx_session(path, device=None):
    """An onnxruntime session for ``path`` (CUDA when available and ``device`` is not ``cpu``)."""
    ort = require_onnx()
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if device == "cpu":
        providers = ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise DataError(f"{path}: onnxruntime cannot load the model ({type(exc).__name__}: {exc})") from None


def onnx_preprocessing(path, meta: dict[str, str], input_shape, size=None, mean=None, std=None,
                       channel_order=None, template=None) -> tuple[Preprocessing, bool]:
    """(preprocessing, flip_fused) of an ONNX model: command-line values, else its metadata, else
    the graph's fixed input size; :class:`ConfigError` naming the flags that are missing."""
    graph_size = tuple(input_shape[2:]) if all(isinstance(s, int) and s > 0 for s in input_shape[2:]) else None
    given = {"size": size, "mean": mean, "std": std, "channel_order": channel_order}
    written = read_metadata(meta)
    found = {"size": written["size"] or graph_size, "mean": written["mean"], "std": written["std"],
             "channel_order": written["channel_order"] or "RGB"}
    values = {k: given[k] if given[k] is not None else found[k] for k in given}
    flags = {"size": "--input-size H,W", "mean": "--mean", "std": "--std"}
    missing = [flags[k] for k in flags if values[k] is None]
    if missing:
        raise ConfigError(f"{path}: the model carries no tailface preprocessing metadata; give "
                          f"{', '.join(missing)} (and --bgr if it takes BGR input), e.g. --mean 127.5 "
                          "--std 127.5 for InsightFace models")
    prep = with_overrides(Preprocessing(parse_size(values["size"])), None, values["mean"], values["std"],
                          values["channel_order"], template if template is not None else written["template"])
    return prep, bool(written["flip_fusion"])


def load_embedder(path, *, size=None, mean=None, std=None, channel_order=None, template=None,
                  device=None) -> Embedder:
    """An :class:`Embedder` for a tailface checkpoint (``.pt``) or an ONNX model (``.onnx``);
    keyword values override what the file says (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    if path.suffix.lower() == ".onnx":
        session = onnx_session(path, device)
        meta = dict(session.get_modelmeta().custom_metadata_map)
        inputs = session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4:
            raise DataError(f"{path}: expected one NCHW image input, the model has "
                            f"{[(i.name, i.shape) for i in inputs]}")
        prep, fused = onnx_preprocessing(path, meta, shape, size, mean, std, channel_order, template)
        return OnnxEmbedder(path, prep, fused, session=session)
    model, meta = load_model(path)
    base = replace(TAILFACE_PREPROCESSING, size=checkpoint_image_size(meta))
    prep = with_overrides(base, size, mean, std, channel_order,
                          template if template is not None else checkpoint_template(meta))
    return TorchEmbedder(model, prep, str(path), device)


def embedder_key(path, size=None, mean=None, std=None, channel_order=None, template=None) -> str:
    """Text that changes when the model file's bytes (:func:`tailface.fingerprints.file_print`: not its
    name or time, so a model replaced by another of the same size and time is not taken for it) or
    the preprocessing overrides change (cache keys)."""
    key = f"{file_print(path)['sha256']}|{size}|{mean}|{std}|{channel_order}"
    return key if template is None else f"{key}|{template}"


__all__ = ["Embedder", "METADATA_KEYS", "OnnxEmbedder", "Preprocessing", "TAILFACE_PREPROCESSING", "TorchEmbedder",
           "embedder_key", "load_embedder"]
