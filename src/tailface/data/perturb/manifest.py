"""A perturbed set on disk, a folder of two files over the images of its source (no copies):

- ``perturbed.lst``: a header of ``# key: value`` lines, ``source`` (the source's dataset spec,
  a path relative to the folder when it is one) and ``source-fingerprint`` (:func:`fingerprint`
  of the source), then one ``IMAGE_ID<TAB>IDENTITY`` line per image, grouped by identity; labels
  are numbered in order of first appearance.
- ``manifest.json``: every change (docs/data.md, "Perturbed training sets"); :func:`replay`
  applies it to the source and gives back the lines of ``perturbed.lst``.

:func:`open_perturbed` opens the folder as a view over its source (``FaceSet.subset`` then
``with_labels``): the images and image ids are the source's, so protocols match them.
``perturbed.lst`` is written last: a folder holding it is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tailface.atomic import write_text
from tailface.data.faceset import FaceSet
from tailface.errors import ConfigError, DataError

LIST_NAME = "perturbed.lst"
MANIFEST_NAME = "manifest.json"
FORMAT = "tailface-perturbed"
VERSION = 1


def fingerprint(faceset: FaceSet) -> str:
    """sha256 of the ``IMAGE_ID<TAB>IDENTITY`` lines of every image of ``faceset``, in order."""
    digest = hashlib.sha256()
    for image_id, label in zip(faceset.image_ids, np.asarray(faceset.labels)):
        digest.update(f"{image_id}\t{faceset.class_names[label]}\n".encode())
    return digest.hexdigest()


def source_reference(spec: str, out: Path) -> str:
    """How ``perturbed.lst`` names its source: a path relative to ``out`` when ``spec`` is an
    existing file or folder (lexically, links not followed; :func:`open_perturbed` joins it to the
    folder the same way), the spec as given otherwise (``synthetic``, ``celeba:...``)."""
    return os.path.relpath(os.path.abspath(spec), os.path.abspath(out)) if Path(spec).exists() else spec


def is_perturbed(path: str | os.PathLike) -> bool:
    """A folder holding ``perturbed.lst``, or that file itself: the format row's test."""
    path = Path(path)
    return path.name == LIST_NAME and path.is_file() or (path / LIST_NAME).is_file()


def check_out(out: Path) -> None:
    """ConfigError unless ``out`` is absent, empty, or a perturbed set written before."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; a perturbed set is a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            ours = json.loads((out / MANIFEST_NAME).read_text()).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise ConfigError(f"{out}: the folder is not empty and holds no perturbed set written by tailface "
                              f"perturb; choose another OUT")


def write_perturbed(out: Path, pairs: Sequence[tuple[str, str]], manifest: dict) -> Path:
    """Write ``manifest.json`` then ``perturbed.lst`` (``pairs``: image id, identity) atomically."""
    out.mkdir(parents=True, exist_ok=True)
    (out / LIST_NAME).unlink(missing_ok=True)  # the folder is incomplete until the new list is in
    write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    source = manifest["source"]
    header = (f"# tailface perturbed set: IMAGE_ID<TAB>IDENTITY lines; every change is in {MANIFEST_NAME}\n"
              f"# source: {source['spec']}\n# source-fingerprint: {source['fingerprint']}\n")
    return write_text(out / LIST_NAME, header + "".join(f"{i}\t{n}\n" for i, n in pairs))


def read_list(path: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The header (``key -> value``) and the ``(image id, identity)`` lines of a ``perturbed.lst``."""
    header: dict[str, str] = {}
    pairs = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                header[key.strip()] = value.strip()
        elif line.strip():
            fields = line.split("\t")
            if len(fields) != 2 or not all(fields):
                raise DataError(f"{path}:{lineno}: expected 'IMAGE_ID<TAB>IDENTITY', got {line!r}")
            pairs.append((fields[0], fields[1]))
    if not header.get("source"):
        raise DataError(f"{path}: no '# source: SPEC' header line")
    if not pairs:
        raise DataError(f"{path}: no images listed")
    return header, pairs


def open_perturbed(spec: str, open_source: Callable[..., FaceSet], **options) -> FaceSet:
    """The perturbed set at ``spec`` (its folder or its ``perturbed.lst``) as a view over its
    source, opened by ``open_source(source spec, **options)`` (``open_faceset``, passed in by the
    format row). DataError when the source changed since the set was written, or lacks an image."""
    path = Path(spec)
    lst = path if path.name == LIST_NAME and path.is_file() else path / LIST_NAME
    header, pairs = read_list(lst)
    source_spec = header["source"]
    beside = os.path.normpath(os.path.join(lst.parent, source_spec))
    if not os.path.isabs(source_spec) and os.path.exists(beside):
        source_spec = beside
    source = open_source(source_spec, **options)
    if header.get("source-fingerprint", "") != fingerprint(source):
        raise DataError(f"{lst}: its source {source_spec} changed since tailface perturb wrote it (its image ids "
                        f"or identities differ); perturb the source again")
    index = {image_id: k for k, image_id in enumerate(source.image_ids)}
    missing = [i for i, _ in pairs if i not in index]
    if missing:
        raise DataError(f"{lst}: {len(missing)} images are not in its source {source_spec} (e.g. {missing[0]})")
    if len(set(i for i, _ in pairs)) != len(pairs):
        raise DataError(f"{lst}: an image is listed twice")
    names: dict[str, int] = {}
    labels = np.array([names.setdefault(name, len(names)) for _, name in pairs], dtype=np.int64)
    view = source.subset([index[i] for i, _ in pairs], relabel=False).with_labels(labels, list(names))
    view.source = str(lst)
    return view


def replay(source_ids: Sequence[str], source_identities: Sequence[str], manifest: dict) -> dict[str, str]:
    """``image id -> identity`` of the perturbed set: the manifest's changes applied, in its
    ``order``, to the source images (``source_identities[i]``: the identity of image
    ``source_ids[i]``). DataError when a change does not fit the state it applies to."""
    state = dict(zip(source_ids, source_identities))

    def expect(image: str, identity: str, where: str) -> None:
        if state.get(image) != identity:
            raise DataError(f"manifest {where}: image {image} is {state.get(image)!r}, not {identity!r}")

    for step in manifest.get("order", []):
        section = manifest.get(step)
        if not section:
            continue
        if step == "split":
            for record in section["identities"]:
                for chunk in record["moved"]:
                    for image in chunk["images"]:
                        expect(image, record["identity"], "split")
                        state[image] = chunk["identity"]
        elif step == "noise":
            for record in section["outside"]:
                for image in record["images"]:
                    expect(image, record["identity"], "noise.outside")
                    del state[image]
            for change in section["relabelled"]:
                expect(change["image"], change["from"], "noise.relabelled")
                state[change["image"]] = change["to"]
            for change in section["replaced"]:
                expect(change["image"], change["identity"], "noise.replaced")
                if change["by"] in state:
                    raise DataError(f"manifest noise.replaced: {change['by']} is still in training")
                del state[change["image"]]
                state[change["by"]] = change["identity"]
        elif step == "shallow":
            for record in section["dropped"]:
                for image in record["images"]:
                    expect(image, record["identity"], "shallow")
                    del state[image]
        else:
            raise DataError(f"manifest: unknown step {step!r}")
    return state
