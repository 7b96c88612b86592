"""Which alignment template a pack of aligned faces was cut with: ``alignment.json`` beside it.

``tailface align`` and ``tailface prepare`` write ``alignment.json`` = ``{"template": NAME,
"size": N}`` into the folder of what they write (the folder of a ``.rec`` pack, whose other
sidecars ``classes.txt``, ``image_ids.txt`` live there too; the top of a folder of identities).
:func:`read_alignment` finds the record of a dataset spec or a file: a folder's own
``alignment.json``, else that of the folder holding the file (``data/lfw/train.rec``,
``bins/lfw.bin``). Packs written before issue 23 have none (None: the callers assume arcface and
say so once).
"""

from __future__ import annotations

import json
from pathlib import Path

from tailface.atomic import write_text
from tailface.data.faceset import FaceSet
from tailface.data.templates import get_template
from tailface.errors import DataError

ALIGNMENT_FILE = "alignment.json"


def write_alignment(folder: str | Path, template: str, size: int) -> Path:
    """Write ``folder/alignment.json`` (the template is checked against the registry)."""
    path = Path(folder) / ALIGNMENT_FILE
    write_text(path, json.dumps({"template": get_template(template).name, "size": int(size)}) + "\n")
    return path


def alignment_file(spec: str | Path) -> Path | None:
    """The ``alignment.json`` that describes ``spec`` (a folder or a file), None when there is none."""
    path = Path(spec)
    if path.is_dir():
        candidate = path / ALIGNMENT_FILE
    elif path.is_file():
        candidate = path.parent / ALIGNMENT_FILE
    else:
        return None
    return candidate if candidate.is_file() else None


def read_alignment(spec: str | Path) -> dict | None:
    """``{"template": NAME, "size": N, "file": PATH}`` recorded for ``spec``, or None (no record).
    A record that is not JSON or names no template is a :class:`DataError` naming the file; an
    unknown template name is kept as written (the caller reports it)."""
    path = alignment_file(spec)
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the alignment record ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("template"), str):
        raise DataError(f"{path}: not an alignment record (expected {{\"template\": NAME, \"size\": N}})")
    return {"template": doc["template"], "size": doc.get("size"), "file": str(path)}


def faceset_alignment(faceset: FaceSet) -> dict | None:
    """The alignment record of the pack a FaceSet was read from (its ``source``, else that of the
    set it is a view of: subsets, relabelled sets), None when unknown."""
    seen: FaceSet | None = faceset
    while seen is not None:
        record = read_alignment(seen.source) if isinstance(seen.source, str) and seen.source else None
        if record is not None:
            return record
        seen = getattr(seen, "parent", None)
    return None
