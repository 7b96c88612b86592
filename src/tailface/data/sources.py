"""FaceSets backed by image files: identity folders, list files, CelebA-style identity files.

Bad files. At construction every source checks, with one ``stat`` per file, that each listed image
exists and is not empty. By default a missing or empty file is a :class:`DataError` naming how many
and the first few. With ``skip_bad=True`` those files are left out instead; ``skipped`` lists them
(``(image_id, reason)``) and a warning is logged, so the image count is never silently wrong.
Decoding happens only at :meth:`read` time: an image that exists but is corrupt or truncated raises
a :class:`DataError` naming the file there (a FaceSet's length is fixed, so a bad image cannot be
dropped mid-epoch). To find those up front, a full decode pass (:mod:`tailface.data.decode_check`):
``tailface check DATA`` lists them, ``data.options.skip_bad: true`` leaves them out of an
experiment's data, and ``tailface pack --skip-bad`` leaves them out of a pack.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tailface.data.decode_check import data_spec_of, undecodable
from tailface.data.faceset import FaceSet
from tailface.data.images import is_image_name, is_jpeg_or_png, read_file_bytes, read_image
from tailface.errors import DataError

log = logging.getLogger(__name__)

_EXAMPLES = 3


class FileFaceSet(FaceSet):
    """Images stored one per file. ``paths[i]`` is the file of image ``i``."""

    paths: list[Path]
    skipped: list[tuple[str, str]]
    skipped_paths: list[str]  # the file of each ``skipped`` entry

    def _read(self, i: int) -> np.ndarray:
        return read_image(self.paths[i])

    def encoded(self, i: int) -> bytes | None:
        data = read_file_bytes(self.paths[int(i)])
        return data if is_jpeg_or_png(data) else None

    def _set_images(self, paths: Sequence[Path], image_ids: Sequence[str], raw_labels: Sequence,
                    class_names: Sequence[str] | None, skip_bad: bool, what: str = "image") -> None:
        """Check files, drop bad ones when ``skip_bad``, then set ``paths``/``labels``/``image_ids``.

        ``raw_labels`` index ``class_names`` when given; otherwise they are the classes themselves
        (integers, mapped densely in numeric order, names = their original values)."""
        bad = _bad_files(paths, image_ids)
        keep = np.ones(len(paths), dtype=bool)
        if bad:
            if not skip_bad:
                examples = "; ".join(f"{p}: {why}" for _, p, why in bad[:_EXAMPLES])
                raise DataError(f"{self.source}: {len(bad)} of {len(paths)} {what} files are missing "
                                f"or empty (e.g. {examples}); to list every unreadable image: tailface check "
                                f"{data_spec_of(self.source)}; to leave them out: tailface pack --skip-bad, or "
                                f"data.options.skip_bad: true in an experiment config")
            keep[[i for i, _, _ in bad]] = False
            log.warning("%s: skipped %d of %d %s files (missing or empty), e.g. %s", self.source,
                        len(bad), len(paths), what, bad[0][1])
        self.skipped = [(image_ids[i], why) for i, _, why in bad]
        self.skipped_paths = [str(p) for _, p, _ in bad]
        self.paths = [p for p, k in zip(paths, keep) if k]
        self.image_ids = [s for s, k in zip(image_ids, keep) if k]
        raw = np.asarray(raw_labels, dtype=np.int64)[keep]
        if class_names is None:
            values, dense = np.unique(raw, return_inverse=True)
            self.class_names = [str(v) for v in values]
        else:
            used, dense = np.unique(raw, return_inverse=True)  # drops classes left without images
            self.class_names = [class_names[c] for c in used]
        self.labels = dense.reshape(-1).astype(np.int64)
        if not len(self.labels):
            raise DataError(f"{self.source}: no {what}s found")
        self.check_labels()


def _bad_files(paths: Sequence[Path], image_ids: Sequence[str]) -> list[tuple[int, Path, str]]:
    bad = []
    for i, p in enumerate(paths):
        try:
            size = os.stat(p).st_size
        except FileNotFoundError:
            bad.append((i, p, "not found"))
            continue
        except OSError as exc:
            bad.append((i, p, f"cannot stat: {exc}"))
            continue
        if size == 0:
            bad.append((i, p, "empty (0 bytes)"))
    return bad


class ImageFolderFaceSet(FileFaceSet):
    """``root/<identity>/<image>``: one class per sub-folder (sorted by name), image ids are the
    paths relative to ``root``. Empty identity folders and stray top-level files are ignored with
    a warning."""

    def __init__(self, root: str | os.PathLike, skip_bad: bool = False):
        root = Path(root)
        self.root = root
        self.source = str(root)
        if not root.is_dir():
            raise DataError(f"{root}: image folder not found")
        folders = sorted((e for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")),
                         key=lambda e: e.name)
        stray = [e.name for e in os.scandir(root) if e.is_file() and is_image_name(e.name)]
        if stray:
            log.warning("%s: ignoring %d images outside identity folders (e.g. %s)", root, len(stray), stray[0])
        paths: list[Path] = []
        ids: list[str] = []
        labels: list[int] = []
        names: list[str] = []
        empty: list[str] = []
        for folder in folders:
            files = sorted(f for f in os.listdir(folder.path) if is_image_name(f))
            if not files:
                empty.append(folder.name)
                continue
            for f in files:
                paths.append(Path(folder.path) / f)
                ids.append(f"{folder.name}/{f}")
                labels.append(len(names))
            names.append(folder.name)
        if empty:
            log.warning("%s: ignoring %d identity folders without images (e.g. %s)", root, len(empty), empty[0])
        if not names:
            raise DataError(f"{root}: no identity folders with images (expected {root}/<identity>/<image>)")
        self._set_images(paths, ids, labels, names, skip_bad)


class ListFileFaceSet(FileFaceSet):
    """A text file of ``path label`` lines (``#`` comments and blank lines ignored; the label is
    the last field, so paths may contain spaces). MXNet ``.lst`` lines (``index<TAB>label<TAB>path``)
    are accepted too. Paths are relative to ``root`` or else the list file's folder. Labels are
    integers, possibly sparse: they are mapped densely in numeric order and kept as class names."""

    def __init__(self, list_file: str | os.PathLike, root: str | os.PathLike | None = None,
                 skip_bad: bool = False):
        list_file = Path(list_file)
        self.list_file = list_file
        self.source = str(list_file)
        self.root = Path(root) if root is not None else list_file.parent
        rel, labels = [], []
        for lineno, line, fields in _fields(list_file):
            tabbed = line.strip().split("\t")
            if len(tabbed) >= 3:  # im2rec .lst: index, label(s), path
                path, label = tabbed[-1], tabbed[1]
            elif len(tabbed) == 2:
                path, label = tabbed
            elif len(fields) >= 2:
                path, label = line.strip().rsplit(None, 1)[0], fields[-1]
            else:
                raise DataError(f"{list_file}:{lineno}: expected 'path label', got {line.strip()!r}")
            labels.append(_parse_int(label, list_file, lineno, "label"))
            rel.append(path)
        if not rel:
            raise DataError(f"{list_file}: no images listed")
        self._set_images([self.root / p for p in rel], rel, labels, None, skip_bad)


class IdentityFileFaceSet(FileFaceSet):
    """A flat image folder plus an identity file of ``<file> <identity>`` lines (CelebA's
    ``identity_CelebA.txt``). Classes are the identity numbers (numeric order, names kept).

    Listed files absent from the folder: with ``on_missing="error"`` (default) a DataError giving
    their count and first examples; with ``"skip"`` they are left out, ``missing`` holds how many
    and a line is logged. ``skip_bad`` handles empty files as for the other sources."""

    def __init__(self, image_dir: str | os.PathLike, identity_file: str | os.PathLike,
                 on_missing: str = "error", skip_bad: bool = False):
        if on_missing not in ("error", "skip"):
            raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
        image_dir, identity_file = Path(image_dir), Path(identity_file)
        self.image_dir, self.identity_file = image_dir, identity_file
        self.source = f"{image_dir} (identities {identity_file})"
        if not image_dir.is_dir():
            raise DataError(f"{image_dir}: image folder not found")
        present = set(os.listdir(image_dir))
        files, labels, absent = [], [], []
        for lineno, line, fields in _fields(identity_file):
            if len(fields) != 2:
                raise DataError(f"{identity_file}:{lineno}: expected '<file> <identity>', got {line.strip()!r}")
            label = _parse_int(fields[1], identity_file, lineno, "identity")
            if fields[0] not in present:
                absent.append(fields[0])
                continue
            files.append(fields[0])
            labels.append(label)
        self.missing = len(absent)
        if absent:
            listed = len(absent) + len(files)
            if on_missing == "error":
                raise DataError(f"{identity_file}: {len(absent)} of {listed} listed images are not in "
                                f"{image_dir} (e.g. {', '.join(absent[:_EXAMPLES])}); "
                                f"to keep only the present ones: the spec celeba:IMAGE_DIR:IDENTITY_FILE, or "
                                f"data.options.on_missing: skip in an experiment config")
            log.warning("%s: %d of %d listed images are not in %s; using the %d present",
                        identity_file, len(absent), listed, image_dir, len(files))
        if not files:
            raise DataError(f"{identity_file}: none of the listed images is in {image_dir}")
        self._set_images([image_dir / f for f in files], files, labels, None, skip_bad)


def _fields(path: Path) -> Iterable[tuple[int, str, list[str]]]:
    """(line number, line, whitespace fields) of the non-blank, non-comment lines of ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            yield lineno, line, fields


def _parse_int(text: str, path: Path, lineno: int, what: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value.is_integer():
        raise DataError(f"{path}:{lineno}: {what} must be an integer, got {text!r}")
    if value < 0 or value >= 2**63:
        raise DataError(f"{path}:{lineno}: {what} {text!r} is out of range (a non-negative integer below 2**63)")
    return int(value)


def find_undecodable(faceset: FaceSet, progress: bool = True) -> list[tuple[int, str]]:
    """Decode every image once; ``(index, error message)`` of those that fail
    (:func:`tailface.data.decode_check.undecodable`)."""
    return undecodable(faceset, progress)
