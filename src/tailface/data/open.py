"""``open_faceset(spec)``: one string names any dataset tailface can read.

The formats are one table, :data:`FORMATS`, tried in order: the first whose ``matches(spec)`` is
true opens it. The accepted-spec text of error messages and ``--help`` is generated from the same
table. A new format is one file with a FaceSet class plus one :class:`Format` row here
(docs/architecture.md, "Adding a dataset format").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tailface.data import synthetic
from tailface.data.faceset import FaceSet
from tailface.data.perturb.manifest import is_perturbed, open_perturbed
from tailface.data.recordio import RecordIOFaceSet
from tailface.data.sources import IdentityFileFaceSet, ImageFolderFaceSet, ListFileFaceSet
from tailface.errors import DataError


@dataclass(frozen=True)
class Format:
    spec: str  # how the spec is written, e.g. "PATH.rec"
    description: str
    matches: Callable[[str], bool]
    open: Callable[..., FaceSet]  # (spec, **options) -> FaceSet


def _synthetic(spec: str, **kw) -> FaceSet:
    return synthetic.synthetic_faceset(**kw)


def _celeba(spec: str, **kw) -> FaceSet:
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise DataError(f"{spec!r}: expected celeba:IMAGE_DIR:IDENTITY_FILE\n{accepted_specs()}")
    kw.setdefault("on_missing", "skip")
    return IdentityFileFaceSet(parts[1], parts[2], **kw)


def _recordio(spec: str, **kw) -> FaceSet:
    path = Path(spec)
    path = path if path.suffix == ".rec" else path / "train.rec"
    unknown = sorted(set(kw) - {"skip_bad"})
    if unknown:
        raise DataError(f"{path}: options {unknown} do not apply to a RecordIO pack")
    return RecordIOFaceSet(path, **kw)


def _list_file(spec: str, **kw) -> FaceSet:
    return ListFileFaceSet(Path(spec), **kw)


def _image_folder(spec: str, **kw) -> FaceSet:
    return ImageFolderFaceSet(Path(spec), **kw)


FORMATS: list[Format] = [
    Format("synthetic (or nothing)", "built-in synthetic long-tailed identities",
           lambda s: s == "synthetic", _synthetic),
    Format("celeba:IMAGE_DIR:IDENTITY_FILE", "flat image folder + '<file> <identity>' lines (absent files skipped)",
           lambda s: s.startswith("celeba:"), _celeba),
    Format("PATH.rec", "RecordIO pack (InsightFace or im2rec layout), .idx beside it",
           lambda s: Path(s).suffix == ".rec", _recordio),
    Format("FOLDER with train.rec", "e.g. a prepared set or an InsightFace download",
           lambda s: (Path(s) / "train.rec").is_file(), _recordio),
    Format("FOLDER with perturbed.lst", "a perturbed set over another set's images (tailface perturb)",
           is_perturbed, lambda s, **kw: open_perturbed(s, open_faceset, **kw)),
    Format("LIST.txt / LIST.lst", "lines 'path label' (paths relative to the list's folder)",
           lambda s: Path(s).suffix in (".txt", ".lst"), _list_file),
    Format("FOLDER of identity folders", "FOLDER/<identity>/<image>",
           lambda s: Path(s).is_dir(), _image_folder),
]


def accepted_specs() -> str:
    """The text listing every format of :data:`FORMATS` (for errors and help)."""
    width = max(len(f.spec) for f in FORMATS) + 2
    return "accepted dataset specs:\n" + "\n".join(f"  {f.spec.ljust(width)}{f.description}" for f in FORMATS)


def open_faceset(spec: str | os.PathLike | None = None, **kw) -> FaceSet:
    """The FaceSet named by ``spec`` (see :func:`accepted_specs`); ``kw`` go to the source's
    constructor (e.g. ``skip_bad=True``; for ``synthetic``, ``synthetic_faceset``'s arguments)."""
    text = "synthetic" if spec is None else str(spec)
    for fmt in FORMATS:
        if fmt.matches(text):
            return fmt.open(text, **kw)
    path = Path(text)
    what = "does not exist" if not path.exists() else "is not a dataset tailface can read"
    raise DataError(f"{text}: {what}\n{accepted_specs()}")
