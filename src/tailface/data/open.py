"""``open_faceset(spec)``: one string names any dataset tailface can read."""

from __future__ import annotations

import os
from pathlib import Path

from tailface.data.faceset import FaceSet
from tailface.errors import DataError

ACCEPTED = """accepted dataset specs:
  synthetic (or nothing)            built-in synthetic long-tailed identities
  PATH.rec                          RecordIO pack (InsightFace or im2rec layout), .idx beside it
  FOLDER with train.rec             e.g. a prepared set or an InsightFace download
  LIST.txt / LIST.lst               lines 'path label' (paths relative to the list's folder)
  FOLDER of identity folders        FOLDER/<identity>/<image>
  celeba:IMAGE_DIR:IDENTITY_FILE    flat image folder + '<file> <identity>' lines (absent files skipped)"""


def open_faceset(spec: str | os.PathLike | None = None, **kw) -> FaceSet:
    """The FaceSet named by ``spec`` (see :data:`ACCEPTED`); ``kw`` go to the source's
    constructor (e.g. ``skip_bad=True``; for ``synthetic``, ``synthetic_faceset``'s arguments)."""
    if spec is None or str(spec) == "synthetic":
        from tailface.data.synthetic import synthetic_faceset

        return synthetic_faceset(**kw)
    text = str(spec)
    if text.startswith("celeba:"):
        from tailface.data.sources import IdentityFileFaceSet

        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise DataError(f"{text!r}: expected celeba:IMAGE_DIR:IDENTITY_FILE\n{ACCEPTED}")
        kw.setdefault("on_missing", "skip")
        return IdentityFileFaceSet(parts[1], parts[2], **kw)
    path = Path(spec)
    if path.suffix == ".rec":
        return _recordio(path, **kw)
    if path.is_dir() and (path / "train.rec").is_file():
        return _recordio(path / "train.rec", **kw)
    if path.suffix in (".txt", ".lst"):
        from tailface.data.sources import ListFileFaceSet

        return ListFileFaceSet(path, **kw)
    if path.is_dir():
        from tailface.data.sources import ImageFolderFaceSet

        return ImageFolderFaceSet(path, **kw)
    what = "does not exist" if not path.exists() else "is not a dataset tailface can read"
    raise DataError(f"{spec}: {what}\n{ACCEPTED}")


def _recordio(path: Path, **kw) -> FaceSet:
    from tailface.data.recordio import RecordIOFaceSet

    unknown = sorted(set(kw) - {"skip_bad"})
    if unknown:
        raise DataError(f"{path}: options {unknown} do not apply to a RecordIO pack")
    return RecordIOFaceSet(path, **kw)
