"""Put feature rows in a protocol's image order by matching image ids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tailface.errors import ProtocolError


def basename(image_id: str) -> str:
    return str(image_id).replace("\\", "/").rsplit("/", 1)[-1]


def rows_for(image_ids: Sequence[str], wanted: Sequence[str], source: str,
             allow_extra: bool = False, key=basename) -> np.ndarray:
    """Row of ``image_ids`` holding each of ``wanted`` (compared through ``key``, by default the
    file name: ``Name/Name_0001.jpg`` matches ``Name_0001.jpg``). :class:`ProtocolError` naming
    ``source`` for duplicate ids, wanted ids that are missing, or (unless ``allow_extra``) ids that
    the protocol does not list."""
    if image_ids is None:
        raise ProtocolError(f"{source}: the features carry no image ids; they are needed to match "
                            "the protocol's image order")
    keys = [key(i) for i in image_ids]
    index: dict[str, int] = {}
    duplicates = []
    for row, k in enumerate(keys):
        if k in index:
            duplicates.append(k)
        index[k] = row
    if duplicates:
        raise ProtocolError(f"{source}: {len(duplicates)} duplicate image ids "
                            f"(e.g. {', '.join(duplicates[:3])})")
    wanted_keys = [key(w) for w in wanted]
    missing = [w for w in wanted_keys if w not in index]
    if missing:
        raise ProtocolError(f"{source}: {len(missing)} of the protocol's {len(wanted_keys)} images "
                            f"have no feature row (e.g. {', '.join(missing[:3])})")
    if not allow_extra:
        wanted_set = set(wanted_keys)
        extra = [k for k in keys if k not in wanted_set]
        if extra:
            raise ProtocolError(f"{source}: {len(extra)} feature rows are not in the protocol's "
                                f"image list (e.g. {', '.join(extra[:3])})")
    return np.array([index[w] for w in wanted_keys], dtype=np.int64)
