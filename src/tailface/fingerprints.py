"""Fingerprints: what a reused artifact was made from, so that it is reused only for the same inputs.

A *print* is a small JSON mapping whose ``sha256`` is what is compared; its other fields say what it
covers, for messages. One function per kind of input:

- :func:`dataset_print` ``(spec, faceset=None)``: a dataset, cheap even for millions of images
  (no image is decoded or hashed: index and list files, sizes and times, and a fixed 64 KiB sample
  of a ``.rec``). What each format offers (the rows of ``data/open.py``'s ``FORMATS``):

  ================================  ==========================================================
  ``synthetic``                     the generator's source file (with a FaceSet: its pixels)
  ``celeba:IMAGE_DIR:ID_FILE``      sha256 of the identity file; the image folder's listing
  ``PATH.rec``, FOLDER/train.rec    sha256 of the ``.idx`` and of the sidecars beside it
                                    (``classes.txt``, ``image_ids.txt``, ``property``,
                                    ``alignment.json``), the ``.rec``'s size, and a fixed
                                    sample of it (the first 4 KiB of 16 records spread over
                                    the index: 64 KiB whatever the pack's size)
  FOLDER with ``perturbed.lst``     sha256 of ``perturbed.lst`` and ``manifest.json``, and the
                                    print of its source
  ``LIST.txt`` / ``LIST.lst``       sha256 of the list
  FOLDER of identity folders        its listing
  any other file / folder           a file: sha256 (of its first and last MiB beyond 64 MiB) and
                                    size; a folder: its listing
  ================================  ==========================================================

  A *listing* is every file's relative path, size and modification time: for images stored one
  per file that is what the format offers. With ``faceset`` (the set as opened) the print also
  covers its labels, class names and image ids (:func:`faceset_print`) and, for images stored one
  per file, each image file's size and modification time. Modification times are compared for
  equality, never for order: a dataset replaced by an *older* copy is a change too. The spec's
  path is not part of the digest (moving a dataset keeps its print).
- :func:`faceset_print`: a FaceSet's labels, class names and image ids (and the pixels of a set
  held in memory: synthetic data); no file is read.
- :func:`file_print`: sha256 of a file's bytes (a checkpoint, a features file, an earlier stage's
  output); memoised per process on the file's size, times and inode.
- :func:`config_print`: a config block (canonical JSON); the block is kept for the message.

An artifact's record (:func:`write_record`, :func:`read_record`; ``<output stem>.inputs.json``
beside it, :func:`record_path`) maps input names to prints. :func:`compare` gives the inputs that
changed (one short text each: which input, old vs new) and those the record does not know (a
record written before that input was fingerprinted; an artifact written before fingerprints has
no record at all): unknown is not a change, callers say so in one warning line and go on.
Where a change would be accepted rather than redone, the flag is :data:`ACCEPT_FLAG`.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import tailface
from tailface.atomic import write_text
from tailface.data.faceset import FaceSet

ACCEPT_FLAG = "--accept-changed-inputs"
RECORD_FORMAT = "tailface-inputs"
RECORD_SUFFIX = ".inputs.json"
REC_SIDECARS = ("classes.txt", "image_ids.txt", "property", "alignment.json")
PERTURBED_FILES = ("perturbed.lst", "manifest.json")
SAMPLE = 1 << 20  # bytes hashed at each end of a large file of unknown format
WHOLE = 64 << 20  # files up to this size are hashed whole
RECORDS_SAMPLED, RECORD_SAMPLE = 16, 4096  # a .rec's records sampled (their first bytes): 64 KiB at most

_file_memo: dict[tuple, dict] = {}
_pixel_memo: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _sha_file(path: Path, limit: int | None = None) -> str:
    """sha256 of the file's bytes; with ``limit``, of its first and last ``limit`` bytes and its size."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if limit is None or size <= 2 * limit:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(f.read(limit))
            f.seek(size - limit)
            h.update(f.read(limit))
            h.update(str(size).encode())
    return h.hexdigest()


def file_print(path: str | os.PathLike) -> dict:
    """``{"path", "sha256", "size"}`` of a file's bytes (``{"path", "sha256": "missing"}`` when absent)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return {"path": str(path), "sha256": "missing"}
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key not in _file_memo:
        _file_memo[key] = {"path": str(path), "sha256": _sha_file(path), "size": st.st_size}
    return dict(_file_memo[key], path=str(path))


def config_print(block: Any, compared: Any = None) -> dict:
    """``{"sha256", "value"}`` of a config block (a mapping of plain values); the digest is of
    ``compared`` when given (e.g. the block less its keys at their defaults), the value kept whole."""
    value = json.loads(_canonical(block))
    return {"sha256": _sha(_canonical(json.loads(_canonical(value if compared is None else compared)))),
            "value": value}


def _root(faceset: FaceSet) -> FaceSet:
    while getattr(faceset, "parent", None) is not None:
        faceset = faceset.parent  # type: ignore[attr-defined]  # views (subset, relabel) keep their parent
    return faceset


def _pixels(root: FaceSet) -> str | None:
    """sha256 of the pixels of a set held in memory (synthetic data), memoised per set; None otherwise."""
    images = getattr(root, "images", None)
    if not isinstance(images, np.ndarray):
        return None
    if root not in _pixel_memo:
        h = hashlib.sha256(str((images.shape, images.dtype.str)).encode())
        h.update(np.ascontiguousarray(images).data)
        _pixel_memo[root] = h.hexdigest()
    return _pixel_memo[root]


def faceset_print(faceset: FaceSet) -> dict:
    """``{"sha256", "images", "classes"}`` of a FaceSet's labels, class names and image ids (and the
    pixels of a set held in memory). Reads no file."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.asarray(faceset.labels, dtype=np.int64)).data)
    h.update(_canonical(list(faceset.class_names)))
    h.update("\n".join(map(str, faceset.image_ids)).encode())
    pixels = _pixels(_root(faceset))
    if pixels is not None:
        h.update(pixels.encode())
    return {"sha256": h.hexdigest(), "images": len(faceset), "classes": faceset.num_classes}


def _listing(folder: Path) -> str:
    """sha256 of ``relative path<TAB>size<TAB>mtime_ns`` of every file under ``folder`` (sorted)."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            st = path.stat()
            h.update(f"{path.relative_to(folder).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _image_files(root: FaceSet) -> str | None:
    """sha256 of each image file's size and modification time, for a set of one file per image."""
    paths = getattr(root, "paths", None)
    if not isinstance(paths, list):
        return None
    h = hashlib.sha256()
    for path in paths:
        st = os.stat(path)
        h.update(f"{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _rec_sample(rec: Path, idx: Path) -> str:
    """sha256 of the first :data:`RECORD_SAMPLE` bytes of up to :data:`RECORDS_SAMPLED` records spread
    evenly over the index (a fixed cost, whatever the pack's size): two packs whose records all have
    the same sizes (same ``.idx``) still differ here."""
    offsets = []
    for line in idx.read_text(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and fields[1].strip().isdigit():
            offsets.append(int(fields[1]))
    picked = sorted({offsets[round(k * (len(offsets) - 1) / max(1, RECORDS_SAMPLED - 1))]
                     for k in range(RECORDS_SAMPLED)}) if offsets else [0]
    h = hashlib.sha256()
    with open(rec, "rb") as f:
        for offset in picked:
            f.seek(offset)
            h.update(f.read(RECORD_SAMPLE))
    return h.hexdigest()


def _rec_parts(rec: Path) -> dict[str, str]:
    idx = rec.with_suffix(".idx")
    parts = {idx.name: _sha_file(idx) if idx.is_file() else "missing",
             rec.name: f"{rec.stat().st_size} bytes" if rec.is_file() else "missing"}
    if rec.is_file() and idx.is_file():
        parts["records sampled"] = _rec_sample(rec, idx)
    for name in REC_SIDECARS:
        if (rec.parent / name).is_file():
            parts[name] = _sha_file(rec.parent / name)
    return parts


def _perturbed_source(lst: Path) -> str | None:
    """The source spec named by a ``perturbed.lst`` header, resolved as ``open_perturbed`` does."""
    with open(lst, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                return None
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() == "source":
                spec = value.strip()
                beside = os.path.normpath(os.path.join(lst.parent, spec))
                return beside if not os.path.isabs(spec) and os.path.exists(beside) else spec
    return None


def _format_parts(text: str) -> tuple[str, dict[str, str]]:
    """The format of ``text`` (as ``open_faceset`` would read it) and the digests of its files."""
    path = Path(text)
    if text == "synthetic":
        from tailface.data import synthetic  # the generator's code is what the data is

        return "synthetic", {"generator": _sha_file(Path(synthetic.__file__))}
    if text.startswith("celeba:"):
        _, image_dir, identities = (text.split(":", 2) + ["", ""])[:3]
        return "celeba", {"identity file": _sha_file(Path(identities)) if Path(identities).is_file() else "missing",
                          "image folder": _listing(Path(image_dir)) if Path(image_dir).is_dir() else "missing"}
    if path.suffix == ".rec":
        return "rec", _rec_parts(path)
    if (path / "train.rec").is_file():
        return "rec", _rec_parts(path / "train.rec")
    lst = path if path.name == PERTURBED_FILES[0] else path / PERTURBED_FILES[0]
    if lst.is_file():
        parts = {name: _sha_file(lst.parent / name) if (lst.parent / name).is_file() else "missing"
                 for name in PERTURBED_FILES}
        source = _perturbed_source(lst)
        if source is not None:
            parts["source"] = dataset_print(source)["sha256"]
        return "perturbed", parts
    if path.suffix in (".txt", ".lst") and path.is_file():
        return "list", {path.name: _sha_file(path)}
    if path.is_dir():
        return "folder", {"listing": _listing(path)}
    if path.is_file():
        return "file", {path.name: _sha_file(path, SAMPLE if path.stat().st_size > WHOLE else None),
                        "size": f"{path.stat().st_size} bytes"}
    return "missing", {"missing": text}


def dataset_print(spec: str | os.PathLike | None, faceset: FaceSet | None = None) -> dict:
    """``{"spec", "format", "sha256", "parts"[, "images", "classes"]}`` of a dataset (module
    docstring); with ``faceset`` (the set as opened), its labels and image files too."""
    text = "synthetic" if spec is None else str(spec)
    fmt, parts = _format_parts(text)
    out: dict = {"spec": text, "format": fmt}
    if faceset is not None:
        if fmt == "synthetic":
            parts = {}  # the pixels say it all (the options too, which the spec does not name)
        content = faceset_print(faceset)
        parts["labels"] = content["sha256"]
        files = None if fmt in ("folder", "celeba") else _image_files(_root(faceset))  # listed already
        if files is not None:
            parts["image files"] = files
        out.update(images=content["images"], classes=content["classes"])
    out["parts"] = parts
    out["sha256"] = _sha(_canonical({"format": fmt, "parts": parts}))
    return out


# -- records ------------------------------------------------------------------------------------


def record_path(output: str | os.PathLike) -> Path:
    """Where the record of ``output``'s inputs is kept: ``final.pt`` -> ``final.inputs.json``."""
    output = Path(output)
    return output.with_name(output.stem + RECORD_SUFFIX)


def write_record(path: str | os.PathLike, inputs: dict[str, dict]) -> Path:
    """Write ``{"format", "tailface", "inputs"}`` atomically."""
    doc = {"format": RECORD_FORMAT, "tailface": tailface.__version__, "inputs": inputs}
    return write_text(Path(path), json.dumps(doc, indent=1, default=str) + "\n")


def read_record(path: str | os.PathLike) -> dict[str, dict] | None:
    """The inputs of a record; None when there is none (or it cannot be read: then unknown too)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    return inputs if isinstance(inputs, dict) else None


@dataclass(frozen=True)
class Comparison:
    changed: list[str]  # one short text per input that changed: which, old vs new
    unknown: list[str]  # inputs the record does not know (written before they were fingerprinted)

    @property
    def same(self) -> bool:
        return not self.changed


def compare(recorded: dict[str, dict] | None, current: dict[str, dict]) -> Comparison:
    """What changed between a record and the current inputs (inputs only in the record are ignored:
    they are no longer inputs); ``recorded`` None: every input unknown."""
    if recorded is None:
        return Comparison([], list(current))
    changed = [describe_change(name, recorded[name], new) for name, new in current.items()
               if name in recorded and _digest(recorded[name]) != _digest(new)]
    return Comparison(changed, [name for name in current if name not in recorded])


def _digest(p: Any) -> Any:
    return p.get("sha256") if isinstance(p, dict) else p


def short(p: Any) -> str:
    """The first 12 hex digits of a print (or its text)."""
    return str(_digest(p))[:12]


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _clip(value: Any, width: int = 40) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[:width - 3] + "..."


def describe_change(name: str, old: dict, new: dict) -> str:
    """``name: what differs (old -> new)``, short: a config's changed keys, a dataset's changed
    files and counts, a file's digests."""
    if isinstance(old, dict) and isinstance(new, dict):
        if "value" in old and "value" in new:  # a config block
            a, b = _flat(old["value"]), _flat(new["value"])
            keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            shown = ", ".join(f"{k or name} {_clip(a.get(k, '(default)'))} -> {_clip(b.get(k, '(default)'))}"
                              for k in keys[:3])
            return f"{name}: {shown}{f' (and {len(keys) - 3} more)' if len(keys) > 3 else ''}"
        if "parts" in old and "parts" in new:  # a dataset
            a, b = old["parts"], new["parts"]
            what = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            counts = [f"{old[k]} -> {new[k]} {k}" for k in ("images", "classes") if k in old and k in new
                      and old[k] != new[k]]
            where = new.get("spec") if old.get("spec") == new.get("spec") else \
                f"{old.get('spec')} -> {new.get('spec')}"
            return (f"{name} {where}: {', '.join(what) or 'content'} differ{'s' if len(what) == 1 else ''}"
                    f"{' (' + ', '.join(counts) + ')' if counts else ''}, fingerprint {short(old)} -> {short(new)}")
        if "classes" in new and "classes" in old:  # a FaceSet: its labels, ids (or pixels)
            counts = [f"{old[k]} -> {new[k]} {k}" for k in ("images", "classes") if old.get(k) != new.get(k)]
            return (f"{name}: other labels or images ({', '.join(counts) or 'same counts'}), fingerprint "
                    f"{short(old)} -> {short(new)}")
        if "path" in new:  # a file (its path when the name does not say it)
            where = name if str(new["path"]).endswith(name) else f"{name} {new['path']}"
            return f"{where}: other contents (sha256 {short(old)} -> {short(new)})"
    return f"{name}: {short(old)} -> {short(new)}"


def summary(changes: list[str], limit: int = 3) -> str:
    """The first ``limit`` changes joined by '; ' (and how many more)."""
    more = f"; and {len(changes) - limit} more" if len(changes) > limit else ""
    return "; ".join(changes[:limit]) + more
