"""The loose crops of an IJB release aligned from their five landmarks, cached on disk, resumable.

Each face crop ``loose_crop/<name>`` is decoded (Pillow, RGB) and aligned with tailface's aligner
from the landmarks and size the release's ``<t>_name_5pts_score.txt`` gives
(:func:`align_loose_crop`, the one call of the aligner: the place where an alignment template is
chosen). The aligned faces are stored in chunks of ``chunk`` images, ``chunk_00012.npz`` (uint8
``n x S x S x 3`` and the chunk's *fingerprint*), each written atomically (:mod:`tailface.atomic`):
a run stopped at any point keeps every finished chunk, and the next run aligns only what is missing.

What a chunk's content depends on, and where it is in the key:

* the landmarks and the image list: the sha1 of ``<t>_name_5pts_score.txt``, the alignment size, the
  alignment template's name (:mod:`tailface.data.templates`; the model's, default
  :data:`DEFAULT_TEMPLATE`) and :data:`VERSION` make the cache folder's name
  (``<cache root>/<S>px-<template>-<12 hex digits>``; the cache root defaults to
  ``$TAILFACE_DATA/<t>-aligned``);
* the image files: the chunk's fingerprint is the sha1 of its images' names, sizes and modification
  times, checked against the files at every open (a replaced image makes its chunk be aligned again).

At 112 x 112 a face takes 37,632 bytes (IJB-C, 469,375 crops: 17.7 GB; IJB-B, 227,630: 8.6 GB);
deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tailface.atomic import atomic_path
from tailface.data.align import align_face
from tailface.data.faceset import FaceSet
from tailface.data.ijb_release import IjbRelease
from tailface.data.images import read_image
from tailface.data.templates import get_template
from tailface.errors import ConfigError, DataError
from tailface.paths import prepared_path

#: The alignment template the crops are aligned to when the model records none (part of the cache key).
DEFAULT_TEMPLATE = "arcface"
#: Bumped when the way a chunk is computed changes (part of the cache key).
VERSION = 1
CHUNK = 1024


def align_loose_crop(image: np.ndarray, landmarks: np.ndarray, size: int, template: str) -> np.ndarray:
    """A loose crop aligned to ``size x size`` from its five landmarks (loose-crop pixels) by
    ``template`` scaled to ``size``: the one call of tailface's aligner for IJB."""
    return align_face(image, landmarks, size, template)


def default_cache_root(kind: str) -> Path:
    return prepared_path(f"{kind}-aligned")


def cache_folder(release: IjbRelease, size: int, cache_root=None, template: str = DEFAULT_TEMPLATE) -> Path:
    key = f"{release.landmarks_digest()}|{size}|{template}|{VERSION}"
    root = Path(cache_root) if cache_root is not None else default_cache_root(release.kind)
    return root / f"{size}px-{template}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def _fingerprint(folder: Path, names: list[str]) -> str:
    digest = hashlib.sha1()
    for name in names:
        try:
            st = os.stat(folder / name)
        except FileNotFoundError:
            raise DataError(f"{folder / name}: image file not found (listed in the release's meta files)") from None
        digest.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _stored_fingerprint(path: Path) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["fingerprint"])
    except Exception:  # absent, or unreadable: aligned again
        return None


class AlignedIjb(FaceSet):
    """The release's face crops, aligned, in the order of its meta files. ``image_ids`` are the
    crops' names; ``labels`` index the images' templates (``class_names``: template ids)."""

    def __init__(self, release: IjbRelease, size: int, cache_root=None, chunk: int = CHUNK,
                 progress: bool = True, template: str | None = None):
        if int(size) != size or size < 8:
            raise ConfigError(f"IJB alignment size must be an integer >= 8, got {size}")
        self.release, self.size, self.chunk = release, int(size), int(chunk)
        self.template = get_template(template or DEFAULT_TEMPLATE).name  # an unknown name: ConfigError
        images = release.images
        self.folder = cache_folder(release, self.size, cache_root, self.template)
        self.image_ids = list(images.names)
        templates, self.labels = np.unique(images.templates, return_inverse=True)
        self.labels = self.labels.astype(np.int64)
        self.class_names = [str(t) for t in templates]
        self.source = (f"{release.root} (aligned {self.size}x{self.size} on the {self.template} template, "
                       f"cache {self.folder})")
        self._loaded: tuple[int, np.ndarray] | None = None
        self.aligned = self._build(progress)

    def chunk_path(self, c: int) -> Path:
        return self.folder / f"chunk_{c:05d}.npz"

    def _build(self, progress: bool) -> int:
        """Align every chunk that is missing or stale; returns how many images were aligned."""
        n = len(self.image_ids)
        todo = []
        for c in range(-(-n // self.chunk)):
            names = self.image_ids[c * self.chunk:(c + 1) * self.chunk]
            fingerprint = _fingerprint(self.release.loose_crop, names)
            if _stored_fingerprint(self.chunk_path(c)) != fingerprint:
                todo.append((c, fingerprint))
        total = sum(min(self.chunk, n - c * self.chunk) for c, _ in todo)
        if not todo:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        landmarks = self.release.images.landmarks
        with tqdm(total=total, desc=f"aligning {self.release.kind} loose crops", unit="img",
                  disable=not progress) as bar:
            for c, fingerprint in todo:
                rows = range(c * self.chunk, min(n, (c + 1) * self.chunk))
                faces = np.empty((len(rows), self.size, self.size, 3), np.uint8)
                for k, i in enumerate(rows):
                    image = read_image(self.release.loose_crop / self.image_ids[i])
                    faces[k] = align_loose_crop(image, landmarks[i], self.size, self.template)
                    bar.update()
                with atomic_path(self.chunk_path(c), suffix=".npz") as tmp:
                    np.savez(tmp, images=faces, fingerprint=np.array(fingerprint))
        return total

    def _read(self, i: int) -> np.ndarray:
        c = i // self.chunk
        if self._loaded is None or self._loaded[0] != c:
            path = self.chunk_path(c)
            try:
                with np.load(path, allow_pickle=False) as z:
                    self._loaded = (c, z["images"])
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(f"{path}: cannot read the aligned chunk ({exc}); delete {self.folder} "
                                "and run again") from None
        return self._loaded[1][i - c * self.chunk]
