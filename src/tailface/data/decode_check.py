"""Decode every image of a FaceSet once, so that unreadable images are found before the work.

Opening a source checks only what is cheap (each file exists and is not empty: one ``stat`` per
image, :mod:`tailface.data.sources`); a truncated or corrupt image is found only when it is
decoded. Two users of a full decode pass:

- ``tailface check DATA`` (:func:`scan`): every image decoded once, every unreadable one listed
  (file and problem), exit 2 when there is one;
- ``data.options.skip_bad: true`` (:func:`without_unreadable`, called by
  :func:`tailface.data.training_set.open_data`): the unreadable images are left out of the data
  (a class left without images is dropped) and listed in ``skipped`` beside the missing and empty
  files the source left out, which the runner writes to ``OUT/skipped.txt``.

A decode pass costs one read and decode of every image; the result of ``skip_bad``'s pass is kept
for the process (:data:`_CHECKED`, keyed on the set's source and image ids), so the cells of one
``tailface study`` / ``reproduce`` process decode their shared data once.

An image that fails during training or feature extraction names the ways out
(:func:`ways_out`): the check verb, ``skip_bad`` and ``tailface pack --skip-bad``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tailface.data.faceset import FaceSet
from tailface.errors import DataError

log = logging.getLogger(__name__)

CHUNK = 64  # images per work item (one DataLoader item with workers)


@dataclass
class Scan:
    """What one decode pass found: ``bad`` = ``(index, 'FILE: problem')`` of each image that does
    not decode, in index order; ``sizes`` = how many decoded images have each ``(height, width)``."""

    images: int
    bad: list[tuple[int, str]] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)


class _Chunks:
    """Item ``c``: the failures and sizes of images ``c * CHUNK ..`` (picklable: worker processes)."""

    def __init__(self, faceset: FaceSet):
        self.faceset = faceset

    def __len__(self) -> int:
        return -(-len(self.faceset) // CHUNK)

    def __getitem__(self, c: int) -> tuple[int, list[tuple[int, str]], Counter]:
        return _decode_range(self.faceset, c * CHUNK, min((c + 1) * CHUNK, len(self.faceset)))


def _decode_range(faceset: FaceSet, start: int, stop: int) -> tuple[int, list[tuple[int, str]], Counter]:
    bad: list[tuple[int, str]] = []
    sizes: Counter = Counter()
    for i in range(start, stop):
        try:
            image = faceset.read(i)
        except DataError as exc:
            bad.append((i, str(exc)))
            continue
        sizes[(int(image.shape[0]), int(image.shape[1]))] += 1
    return stop - start, bad, sizes


def scan(faceset: FaceSet, progress: bool | None = True, num_workers: int = 0,
         desc: str = "decoding images") -> Scan:
    """Decode every image of ``faceset`` once (``num_workers`` worker processes, chunks in order;
    0: in this process). ``progress``: a tqdm bar on stderr (None: only on a terminal). A process
    pool rather than a torch DataLoader, so that the command line starts without importing torch."""
    result = Scan(len(faceset))
    chunks = _Chunks(faceset)
    with ExitStack() as stack:
        if num_workers > 0:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=num_workers))
            items: Iterable = pool.map(chunks.__getitem__, range(len(chunks)))
        else:
            items = (chunks[c] for c in range(len(chunks)))
        _collect(result, items, len(faceset), progress, desc)
    result.bad.sort()
    return result


def _collect(result: Scan, items: Iterable, total: int, progress: bool | None, desc: str) -> None:
    with tqdm(total=total, desc=desc, unit="img", disable=None if progress is None else not progress) as bar:
        for n, bad, sizes in items:
            result.bad.extend(bad)
            result.sizes.update(sizes)
            bar.update(n)


def undecodable(faceset: FaceSet, progress: bool | None = True, num_workers: int = 0) -> list[tuple[int, str]]:
    """``(index, 'FILE: problem')`` of every image of ``faceset`` that does not decode."""
    return scan(faceset, progress, num_workers).bad


_CHECKED: dict[tuple[str, str, int, str], list[tuple[int, str]]] = {}


def _key(faceset: FaceSet) -> tuple[str, str, int, str]:
    ids = hashlib.sha256("\n".join(faceset.image_ids).encode()).hexdigest()
    return type(faceset).__name__, str(faceset.source), len(faceset), ids


def without_unreadable(faceset: FaceSet, progress: bool | None = None) -> FaceSet:
    """``faceset`` without the images that do not decode (relabelled: a class left without images is
    dropped); its ``skipped`` lists ``(image id, 'FILE: problem')`` after the files the source left
    out when opening. ``faceset`` itself when every image decodes."""
    key = _key(faceset)
    if key not in _CHECKED:
        _CHECKED[key] = undecodable(faceset, progress)
    bad = _CHECKED[key]
    if not bad:
        return faceset
    if len(bad) == len(faceset):
        raise DataError(f"{faceset.source}: none of its {len(faceset)} images can be decoded (e.g. {bad[0][1]})")
    keep = np.setdiff1d(np.arange(len(faceset)), [i for i, _ in bad])
    kept = faceset.subset(keep, relabel=True)
    kept.skipped = [*getattr(faceset, "skipped", []), *((faceset.image_ids[i], why) for i, why in bad)]  # type: ignore[attr-defined]
    log.warning("%s: skipped %d of %d images that cannot be decoded (data.options.skip_bad), e.g. %s",
                faceset.source, len(bad), len(faceset), bad[0][1])
    return kept


def data_spec_of(source: str) -> str:
    """``source`` when it names a file or folder (a spec the user can pass back), else ``DATA``."""
    return source if source and Path(source).exists() else "DATA"


def ways_out(source: str) -> str:
    """What to do about an unreadable image of the data at ``source`` (for error messages)."""
    return (f"to list every unreadable image: tailface check {data_spec_of(source)}; to leave them out: "
            "data.options.skip_bad: true in the experiment config, or tailface pack --skip-bad (a clean pack)")
