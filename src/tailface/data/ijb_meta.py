"""Parsers of the IJB-B / IJB-C image lists as the insightface release distributes them (``meta/``).

``<t>_face_tid_mid.txt``: one line per face crop, ``IMAGE TEMPLATE_ID MEDIA_ID`` separated by spaces
(``1.jpg 1 69544``). ``<t>_name_5pts_score.txt``: one line per face crop, ``IMAGE x1 y1 x2 y2 x3 y3
x4 y4 x5 y5 SCORE`` (12 fields): the five landmarks (left eye, right eye, nose, left and right mouth
corner) in the loose crop's pixels and the detector's face score. The anchors (insightface
``eval_ijbc.py``, ``ijb_evals.py``) pair the two files line by line; here the k-th lines must name the
same image (a :class:`DataError` otherwise). 1:N lists (``<t>_1N_gallery_G1.csv`` ...): comma-separated
with a header row, one row per image, template id and subject id in the columns named
``TEMPLATE_ID`` and ``SUBJECT_ID`` (else the first two columns, which is what the anchors read).

Every malformed line is a :class:`DataError` naming the file and the line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.errors import DataError


@dataclass
class ImageList:
    """The face crops of a release, in the order of its files."""

    names: list[str]          # file names under loose_crop/
    templates: np.ndarray     # int64 template id per image
    medias: np.ndarray        # int64 media id per image
    landmarks: np.ndarray     # float64 N x 5 x 2, loose-crop pixels
    scores: np.ndarray        # float64 detector score per image

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class SearchList:
    """A 1:N gallery or probe list: its templates (ascending ids, as ``np.unique`` gives them, the
    anchors' order) and each template's subject."""

    path: Path
    templates: np.ndarray     # int64, unique, ascending
    subjects: np.ndarray      # int64, one per template


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (an IJB release has it under meta/)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: empty file")
    return lines


def _int(text: str, path: Path, lineno: int, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {what} {text!r} is not an integer") from None


def read_face_tid_mid(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, template ids, media ids)`` of ``<t>_face_tid_mid.txt``."""
    names, templates, medias = [], [], []
    for lineno, line in enumerate(_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DataError(f"{path}:{lineno}: {len(fields)} fields, expected 3 (image template_id media_id)")
        names.append(fields[0])
        templates.append(_int(fields[1], path, lineno, "template id"))
        medias.append(_int(fields[2], path, lineno, "media id"))
    return names, np.array(templates, np.int64), np.array(medias, np.int64)


def read_name_5pts_score(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, landmarks N x 5 x 2, detector scores)`` of ``<t>_name_5pts_score.txt``."""
    names, values = [], []
    for lineno, line in enumerate(_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 12:
            raise DataError(f"{path}:{lineno}: {len(fields)} fields, expected 12 (image, 5 landmarks x y, score)")
        try:
            numbers = [float(f) for f in fields[1:]]
        except ValueError:
            raise DataError(f"{path}:{lineno}: landmarks and score must be numbers, got {' '.join(fields[1:])!r}") \
                from None
        if not np.isfinite(numbers).all():
            raise DataError(f"{path}:{lineno}: landmarks and score must be finite")
        names.append(fields[0])
        values.append(numbers)
    array = np.array(values, np.float64)
    return names, array[:, :10].reshape(-1, 5, 2), array[:, 10]


def read_image_list(face_tid_mid: Path, name_5pts_score: Path) -> ImageList:
    """Both per-image files, checked to name the same images in the same order."""
    names, templates, medias = read_face_tid_mid(face_tid_mid)
    names2, landmarks, scores = read_name_5pts_score(name_5pts_score)
    if len(names2) != len(names):
        raise DataError(f"{name_5pts_score}: {len(names2)} images, {face_tid_mid} lists {len(names)}; "
                        "the two files must list the same images in the same order")
    for k, (a, b) in enumerate(zip(names, names2)):
        if a != b:
            raise DataError(f"{name_5pts_score}: image {k + 1} is {b!r} where {face_tid_mid} has {a!r}; "
                            "the two files must list the same images in the same order")
    if len(set(names)) != len(names):
        raise DataError(f"{face_tid_mid}: image names repeat; each line must be its own face crop")
    return ImageList(names, templates, medias, landmarks, scores)


def _column(header: list[str], name: str, default: int) -> int:
    wanted = [i for i, h in enumerate(header) if h.strip().upper() == name]
    return wanted[0] if wanted else default


def read_search_list(path: Path) -> SearchList:
    """A 1:N gallery or probe CSV (header row; ``TEMPLATE_ID``, ``SUBJECT_ID``)."""
    try:
        handle = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (the 1:N lists of an IJB release are under meta/)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    subject_of: dict[int, int] = {}
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: empty file, expected a header row (TEMPLATE_ID,SUBJECT_ID,...)")
        t_col, s_col = _column(header, "TEMPLATE_ID", 0), _column(header, "SUBJECT_ID", 1)
        for row in reader:
            if not row or not any(f.strip() for f in row):
                continue
            lineno = reader.line_num
            if len(row) <= max(t_col, s_col):
                raise DataError(f"{path}:{lineno}: {len(row)} fields, the template and subject ids are in columns "
                                f"{t_col + 1} and {s_col + 1}")
            template = _int(row[t_col].strip(), path, lineno, "template id")
            subject = _int(row[s_col].strip(), path, lineno, "subject id")
            if subject_of.setdefault(template, subject) != subject:
                raise DataError(f"{path}:{lineno}: template {template} belongs to subjects {subject_of[template]} "
                                f"and {subject}")
    if not subject_of:
        raise DataError(f"{path}: no rows after the header")
    templates = np.array(sorted(subject_of), np.int64)
    return SearchList(path, templates, np.array([subject_of[t] for t in templates], np.int64))
