"""Turn the real face sets under ``faces_root()`` into aligned RecordIO packs (112x112 ArcFace
crops by default; any registered template, :mod:`tailface.data.templates`).

``prepare(name)`` writes ``prepared_path(name)/train.rec`` (+ ``train.idx`` and the sidecar files
of :func:`~tailface.data.recordio.write_recordio`, ``alignment.json``: the template and size,
:mod:`tailface.data.alignment_record`, plus ``prepare.json``: counts, fallbacks, template, time).
Sets: ``lfw``, ``celeba-aligned``, ``celeba-wild`` and ``celeba-train`` (both CelebA sets merged by
CelebA identity number). Images without landmarks are aligned with the set's mean landmarks
(all three sets are already roughly centred on the face, so this is "the centre of the image").
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.pool
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.data.align import AlignedFaceSet
from tailface.data.alignment_record import read_alignment, write_alignment
from tailface.data.faceset import FaceSet
from tailface.data.landmarks import read_landmarks
from tailface.data.recordio import write_recordio
from tailface.data.sources import IdentityFileFaceSet, ImageFolderFaceSet
from tailface.data.templates import DEFAULT_TEMPLATE, get_template
from tailface.errors import ConfigError, DataError
from tailface.paths import faces_root, prepared_path

SETS = ("lfw", "celeba-aligned", "celeba-wild", "celeba-train")


@dataclass(frozen=True)
class RawSet:
    """Where one real set lives under the faces root."""

    open: Callable[[Path], FaceSet]
    landmarks: str


def _lfw(root: Path) -> FaceSet:
    return ImageFolderFaceSet(root / "lfw" / "lfw-deepfunneled")


def _celeba_aligned(root: Path) -> FaceSet:
    return IdentityFileFaceSet(root / "celeba" / "img_align_celeba_89x109",
                               root / "celeba" / "identity_CelebA.txt", on_missing="skip")


def _celeba_wild(root: Path) -> FaceSet:
    return ImageFolderFaceSet(root / "celeba" / "wild_crops")


RAW_SETS = {
    "lfw": RawSet(_lfw, "lfw/landmarks.csv"),
    "celeba-aligned": RawSet(_celeba_aligned, "celeba/img_align_celeba_89x109_landmarks.csv"),
    "celeba-wild": RawSet(_celeba_wild, "celeba/wild_crops/landmarks.csv"),
}
MERGED_SETS = {"celeba-train": ("celeba-aligned", "celeba-wild")}


def aligned_raw_set(name: str, root: Path, output_size: int | None = 112,
                    template: str = DEFAULT_TEMPLATE) -> AlignedFaceSet:
    """One real set, aligned on read; images without landmarks use the set's mean landmarks."""
    raw = RAW_SETS[name]
    faceset = raw.open(root)
    table = read_landmarks(root / raw.landmarks)
    points = table.lookup(faceset.image_ids)
    return AlignedFaceSet(faceset, points, output_size, fallback=table.mean_points(), template=template)


class MergedFaceSet(FaceSet):
    """Several FaceSets as one, classes merged by name (numeric order when all names are
    integers, else text order). Image ids must not collide."""

    def __init__(self, parts: Sequence[FaceSet]):
        self.parts = list(parts)
        names = sorted({n for p in parts for n in p.class_names}, key=_name_order)
        index = {n: k for k, n in enumerate(names)}
        self.class_names = names
        self.labels = np.concatenate(
            [np.array([index[p.class_names[l]] for l in p.labels], dtype=np.int64) for p in parts])
        self.image_ids = [s for p in parts for s in p.image_ids]
        self.owner = np.concatenate([np.full(len(p), k) for k, p in enumerate(parts)])
        self.local = np.concatenate([np.arange(len(p)) for p in parts])
        self.source = " + ".join(p.source for p in parts)
        if len(set(self.image_ids)) != len(self.image_ids):
            raise DataError(f"{self.source}: image ids collide between the merged sets")
        self.check_labels()

    def _read(self, i: int) -> np.ndarray:
        return self.parts[self.owner[i]].read(self.local[i])


def _name_order(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


class PrefetchFaceSet(FaceSet):
    """Reads ``parent`` in blocks of consecutive indices with a process pool (for packing, which
    reads in label order: sort the set by label first)."""

    def __init__(self, parent: FaceSet, workers: int = 2, block: int = 512):
        self.parent, self.workers, self.block = parent, workers, block
        self.labels, self.class_names = parent.labels, parent.class_names
        self.image_ids, self.source = parent.image_ids, parent.source
        self._cache: dict[int, np.ndarray] = {}
        self._pool: multiprocessing.pool.Pool | None = None

    def _read(self, i: int) -> np.ndarray:
        if i not in self._cache:
            self._cache.clear()
            indices = list(range(i, min(i + self.block, len(self))))
            if self._pool is None:
                ctx = multiprocessing.get_context("fork")
                self._pool = ctx.Pool(self.workers, initializer=_set_worker_faceset, initargs=(self.parent,))
            self._cache = dict(zip(indices, self._pool.map(_worker_read, indices, chunksize=16)))
        return self._cache.pop(i)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None


_WORKER_FACESET: FaceSet | None = None


def _set_worker_faceset(faceset: FaceSet) -> None:
    global _WORKER_FACESET
    _WORKER_FACESET = faceset


def _worker_read(i: int) -> np.ndarray:
    assert _WORKER_FACESET is not None  # set by the pool initializer
    return _WORKER_FACESET.read(i)


def build_prepared_faceset(name: str, root: Path, output_size: int | None = 112,
                           template: str = DEFAULT_TEMPLATE) -> FaceSet:
    """The aligned FaceSet that ``prepare(name)`` packs, sorted by label."""
    faceset: FaceSet
    if name in RAW_SETS:
        faceset = aligned_raw_set(name, root, output_size, template)
    elif name in MERGED_SETS:
        faceset = MergedFaceSet([aligned_raw_set(n, root, output_size, template) for n in MERGED_SETS[name]])
    else:
        raise DataError(f"unknown set {name!r}; choose from {', '.join(SETS)}")
    order = np.argsort(faceset.labels, kind="stable")
    return faceset.subset(order, relabel=False)


def fallback_ids(faceset: FaceSet) -> list[str]:
    """Image ids that were aligned with the fallback landmarks."""
    while hasattr(faceset, "parent") and not isinstance(faceset, AlignedFaceSet):
        faceset = faceset.parent
    if isinstance(faceset, AlignedFaceSet):
        return faceset.missing_ids()
    if isinstance(faceset, MergedFaceSet):
        return [s for p in faceset.parts for s in fallback_ids(p)]
    return []


def prepared_alignment(out: Path) -> tuple[str, int | None]:
    """(template, size) of an existing pack: its ``alignment.json``, else (packs before issue 23,
    all ArcFace) arcface and the ``size`` of its ``prepare.json``."""
    record = read_alignment(out)
    if record is not None:
        return record["template"], record["size"]
    summary = out / "prepare.json"
    size = json.loads(summary.read_text()).get("size") if summary.is_file() else None
    return DEFAULT_TEMPLATE, size


def prepare(name: str, root: Path | None = None, out: Path | None = None, output_size: int | None = None,
            workers: int = 2, force: bool = False, progress: bool = True, template: str = DEFAULT_TEMPLATE) -> dict:
    """Write the pack of ``name`` aligned with ``template`` at ``output_size`` (None: the
    template's reference size, 112 for arcface) to ``out`` (default ``prepared_path(name)``) and
    return its summary. An existing complete pack is kept unless ``force``; one cut with another
    template or size is a :class:`ConfigError` (``force`` replaces it)."""
    chosen = get_template(template)
    output_size = chosen.output_size(output_size)
    root = Path(root) if root is not None else faces_root()
    out = Path(out) if out is not None else prepared_path(name)
    if not root.is_dir():
        raise DataError(f"{root}: face data folder not found (set $TAILFACE_FACES or pass --faces)")
    summary_path = out / "prepare.json"
    if summary_path.is_file() and not force:
        have = prepared_alignment(out)
        if have != (chosen.name, output_size):
            raise ConfigError(f"{out}: already prepared with template {have[0]} at size {have[1]}, not "
                              f"{chosen.name} at {output_size}; pass --force to replace it or --out for another folder")
        summary = json.loads(summary_path.read_text())
        summary["skipped"] = "already prepared (use --force to redo)"
        return summary
    start = time.perf_counter()
    faceset = build_prepared_faceset(name, root, output_size, chosen.name)
    reader = PrefetchFaceSet(faceset, workers) if workers > 1 else faceset
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        result = write_recordio(reader, tmp / "train.rec", progress=progress)
    finally:
        if isinstance(reader, PrefetchFaceSet):
            reader.close()
    fallbacks = fallback_ids(faceset)
    summary = {
        "name": name, "source": faceset.source, "images": result.num_images,
        "identities": result.num_classes, "size": output_size, "template": chosen.name,
        "mean_landmark_fallback": len(fallbacks), "fallback_examples": fallbacks[:10],
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_alignment(tmp, chosen.name, output_size)
    (tmp / "prepare.json").write_text(json.dumps(summary, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return summary
