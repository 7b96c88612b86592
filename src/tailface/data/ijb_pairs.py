"""``<t>_template_pair_label.txt``: the 1:1 template pairs of an IJB release, read in bounded memory.

One pair per line, ``TEMPLATE_1 TEMPLATE_2 LABEL`` separated by spaces, label 1 (same subject) or 0
(IJB-C: 15,658,489 lines). The file is read in blocks of ``block_bytes`` cut at line ends; each
block's fields are counted per line with NumPy (a line with other than 3 fields is a
:class:`DataError` naming its number) and parsed by ``np.fromstring``; the result is two int32
arrays of template ids and an int8 label array (9 bytes per pair; the text is never held whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.errors import DataError


@dataclass
class PairList:
    path: Path
    first: np.ndarray   # int32 template ids
    second: np.ndarray  # int32 template ids
    label: np.ndarray   # int8, 1 = same subject

    def __len__(self) -> int:
        return len(self.label)


def _fields_per_line(block: bytes) -> np.ndarray:
    """Number of whitespace-separated fields on each line of ``block`` (which ends at a line end
    or at the end of the file): a field starts at a byte above 32 (not a space, tab or line end)
    that follows one at or below 32."""
    data = np.frombuffer(block, np.uint8)
    space = data <= 32
    starts = np.empty(len(data), bool)
    starts[0] = not space[0]
    np.greater(space[:-1], space[1:], out=starts[1:])
    ends = np.flatnonzero(data == 10)
    if not len(ends) or ends[-1] != len(data) - 1:
        ends = np.r_[ends, len(data) - 1]
    return np.diff(np.cumsum(starts, dtype=np.int64)[ends], prepend=0)


def _parse_block(block: bytes, path: Path, first_line: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows x 3 values, the line number of each row)``."""
    per_line = _fields_per_line(block)
    bad = np.flatnonzero((per_line != 3) & (per_line != 0))
    if len(bad):
        line = first_line + int(bad[0])
        raise DataError(f"{path}:{line}: {per_line[bad[0]]} fields, expected 3 (template_1 template_2 label)")
    if not per_line.any():  # blank lines only (np.fromstring would read them as one 0)
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
    try:
        values = np.fromstring(block, dtype=np.int64, sep=" ")
    except ValueError:
        values = None
    if values is None or len(values) != 3 * int((per_line == 3).sum()):
        last = first_line + len(per_line) - 1
        where = f"{path}:{first_line}" if last == first_line else f"{path}: lines {first_line}-{last}"
        raise DataError(f"{where}: every field must be an integer (template_1 template_2 label)")
    rows = values.reshape(-1, 3)
    line_of = first_line + np.flatnonzero(per_line == 3)
    bad_label = np.flatnonzero((rows[:, 2] != 0) & (rows[:, 2] != 1))
    if len(bad_label):
        raise DataError(f"{path}:{line_of[bad_label[0]]}: label {rows[bad_label[0], 2]} is not 0 or 1")
    bad_id = np.flatnonzero(((rows[:, :2] < 0) | (rows[:, :2] > np.iinfo(np.int32).max)).any(axis=1))
    if len(bad_id):
        raise DataError(f"{path}:{line_of[bad_id[0]]}: template ids must lie in 0..{np.iinfo(np.int32).max}")
    return rows, line_of


def read_pairs(path: Path, block_bytes: int = 1 << 25) -> PairList:
    """Parse a template pair list (see the module docstring)."""
    path = Path(path)
    firsts, seconds, labels = [], [], []
    line = 1
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (an IJB release has it under meta/)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    with handle:
        rest = b""
        while True:
            chunk = handle.read(block_bytes)
            data = rest + chunk
            if not data:
                break
            cut = len(data) if not chunk else data.rfind(b"\n") + 1
            if cut == 0:  # no line end yet in this block: read on
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            rows, _ = _parse_block(block, path, line)
            line += block.count(b"\n")
            if len(rows):
                firsts.append(rows[:, 0].astype(np.int32))
                seconds.append(rows[:, 1].astype(np.int32))
                labels.append(rows[:, 2].astype(np.int8))
            if not chunk:
                break
    if not labels:
        raise DataError(f"{path}: no pairs")
    return PairList(path, np.concatenate(firsts), np.concatenate(seconds), np.concatenate(labels))
