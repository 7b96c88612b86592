"""Five-point landmark tables (CSV): ``identity,file,score,left_eye_x,left_eye_y,...``.

One row per image. ``file`` is the image's name (optionally ``identity`` its folder); the ten
coordinate columns give left eye, right eye, nose, left and right mouth corners in the image's
pixels. A row whose coordinate fields are all empty means no face was found.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.errors import DataError

POINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
COORD_COLUMNS = tuple(f"{p}_{axis}" for p in POINT_NAMES for axis in ("x", "y"))


@dataclass
class LandmarkTable:
    """``points[k]`` (5x2, NaN when no face was found) belongs to ``files[k]`` in folder
    ``identities[k]`` ('' when the CSV has no identity column)."""

    path: Path
    identities: list[str]
    files: list[str]
    points: np.ndarray  # K x 5 x 2 float64
    scores: np.ndarray  # K, NaN when absent

    def __len__(self) -> int:
        return len(self.files)

    @property
    def found(self) -> np.ndarray:
        """Rows with landmarks."""
        return np.isfinite(self.points).all(axis=(1, 2))

    def keys(self) -> list[str]:
        """``identity/file`` per row (just ``file`` without an identity)."""
        return [f"{i}/{f}" if i else f for i, f in zip(self.identities, self.files)]

    def lookup(self, image_ids: Sequence[str]) -> np.ndarray:
        """Landmarks (N x 5 x 2, NaN where none) for image ids, matched on ``identity/file``, else
        on the file name alone when that is unique in the table. Ids with no row get NaN."""
        by_key = {k: r for r, k in enumerate(self.keys())}
        by_file: dict[str, int] = {}
        for r, f in enumerate(self.files):
            by_file[f] = -1 if f in by_file else r
        out = np.full((len(image_ids), 5, 2), np.nan)
        for i, image_id in enumerate(image_ids):
            row = by_key.get(image_id)
            if row is None:
                row = by_file.get(os.path.basename(image_id), -1)
            if row >= 0:
                out[i] = self.points[row]
        return out

    def mean_points(self) -> np.ndarray:
        """Average landmarks over the rows that have them (a fallback for images without)."""
        found = self.points[self.found]
        if not len(found):
            raise DataError(f"{self.path}: no row has landmarks")
        return found.mean(axis=0)


def read_landmarks(path: str | os.PathLike) -> LandmarkTable:
    """Parse a landmarks CSV; DataError naming the file and line on any malformed row."""
    path = Path(path)
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read landmarks ({exc.strerror or exc})") from exc
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: empty file, expected a header with columns file, {', '.join(COORD_COLUMNS)}")
        header = [h.strip() for h in header]
        missing = [c for c in ("file",) + COORD_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {', '.join(missing)} (header: {','.join(header)})")
        col = {name: header.index(name) for name in header}
        coord_idx = [col[c] for c in COORD_COLUMNS]
        identities, files, points, scores = [], [], [], []
        for row in reader:
            lineno = reader.line_num
            if not row or all(not f.strip() for f in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{lineno}: {len(row)} fields, header has {len(header)}")
            name = row[col["file"]].strip()
            if not name:
                raise DataError(f"{path}:{lineno}: empty file name")
            files.append(name)
            identities.append(row[col["identity"]].strip() if "identity" in col else "")
            points.append(_coords(row, coord_idx, path, lineno))
            scores.append(_number(row[col["score"]], path, lineno, "score") if "score" in col else np.nan)
    if not files:
        raise DataError(f"{path}: no landmark rows")
    return LandmarkTable(path, identities, files, np.array(points).reshape(-1, 5, 2), np.array(scores))


def _coords(row: list[str], idx: list[int], path: Path, lineno: int) -> list[float]:
    fields = [row[i].strip() for i in idx]
    if all(not f for f in fields):
        return [np.nan] * len(fields)
    if any(not f for f in fields):
        raise DataError(f"{path}:{lineno}: some landmark fields are empty (all ten or none must be given)")
    values = [_number(f, path, lineno, name) for f, name in zip(fields, COORD_COLUMNS)]
    if not np.isfinite(values).all():
        raise DataError(f"{path}:{lineno}: landmark coordinates must be finite")
    return values


def _number(text: str, path: Path, lineno: int, column: str) -> float:
    text = text.strip()
    if not text:
        return np.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}:{lineno}: column {column}: {text!r} is not a number") from None
