"""Feature extraction with flip fusion, and ``.npz`` feature files that keep the image order.

Input: tailface's preprocessing on the device (:func:`tailface.data.tensors.normalize`, i.e.
:data:`tailface.data.preprocess.TAILFACE_PREPROCESSING`). Flip fusion: the feature of an image is
``f(x) + f(mirror(x))`` (summed, not normalised), the backbone in eval mode, computed by
:func:`tailface.data.preprocess.flip_fusion` (one pass over the batch and its mirror).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from tailface import faults
from tailface.atomic import atomic_path
from tailface.data import workers
from tailface.data.faceset import FaceSet
from tailface.data.preprocess import flip_fusion
from tailface.data.tensors import EvalBatches, normalize
from tailface.errors import DataError, OutputError

MARKER = "tailface_features"  # the key that marks a features file tailface wrote (its format version)
MARKER_VALUE = "1"


def extract_features(model: nn.Module, faceset: FaceSet, image_size, batch_size: int = 256,
                     flip: bool = True, num_workers: int = 0, device=None, progress: bool = True) -> np.ndarray:
    """float32 ``N x E`` features of every image of ``faceset``, in its order."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    loader = torch.utils.data.DataLoader(EvalBatches(faceset, size, batch_size), batch_size=None,
                                         num_workers=num_workers, pin_memory=device.type == "cuda")
    was_training = model.training
    model.eval().to(device)
    out = []
    try:
        with torch.inference_mode():
            for images in tqdm(workers.iterate(loader), total=len(loader), desc="features", unit="batch",
                               disable=not progress, leave=False):
                x = normalize(images.to(device, non_blocking=True))
                feats = flip_fusion(model, x) if flip else model(x)
                out.append(feats.float().cpu())
                faults.point("features")
    finally:
        model.train(was_training)
    if not out:
        raise DataError(f"{faceset.source}: no images to embed")
    return torch.cat(out).numpy().astype(np.float32, copy=False)


def save_features(path, features: np.ndarray, image_ids, labels=None) -> Path:
    """Write ``features`` (N x E), ``image_ids`` (N names) and optional ``labels`` to ``.npz``
    atomically, with the key :data:`MARKER` that says tailface wrote it."""
    path = Path(path)
    features = np.asarray(features, dtype=np.float32)
    image_ids = np.asarray([str(s) for s in image_ids])
    if features.ndim != 2 or len(features) != len(image_ids):
        raise DataError(f"{path}: {features.shape} features for {len(image_ids)} image ids")
    arrays = {"features": features, "image_ids": image_ids, MARKER: np.asarray(MARKER_VALUE)}
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(features),):
            raise DataError(f"{path}: {labels.shape} labels for {len(features)} features")
        arrays["labels"] = labels
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


def written_by_tailface(path) -> bool:
    """Whether ``path`` is a features ``.npz`` written by :func:`save_features` (it holds :data:`MARKER`)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return MARKER in getattr(z, "files", ())
    except Exception:  # not an npz (a text file, an image, anything of the user's)
        return False


def check_features_target(path, force: bool = False) -> Path:
    """``path`` if a features file may be written there: it does not exist, or is an earlier features
    file of tailface's, or ``force``. Otherwise :class:`OutputError` naming it; nothing is replaced."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; OUT names the features file to write (e.g. {path / 'features.npz'})")
    if path.exists() and not force and not written_by_tailface(path):
        raise OutputError(f"{path}: exists and is not a features file tailface wrote; refusing to replace it "
                          f"(give another OUT, or --force to replace it)")
    return path


def load_features(path) -> dict:
    """``{"features": float32 N x E, "image_ids": list[str], "labels": int64 array or None}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: features file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:
        raise DataError(f"{path}: cannot read features file ({type(exc).__name__}: {exc})") from None
    if "features" not in data or "image_ids" not in data:
        raise DataError(f"{path}: a features file needs arrays 'features' and 'image_ids', has {sorted(data)}")
    features = data["features"].astype(np.float32, copy=False)
    ids = [str(s) for s in data["image_ids"]]
    if features.ndim != 2 or len(features) != len(ids):
        raise DataError(f"{path}: {features.shape} features for {len(ids)} image ids")
    labels = data.get("labels")
    return {"features": features, "image_ids": ids, "labels": None if labels is None else labels.astype(np.int64)}
