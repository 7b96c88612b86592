"""Split: the same person spread over many small identities ("duplicated people in the tail").

``round(share * |A|)`` of the head identities of group A (``>= thresholds.a`` images) are drawn;
from each, ``m = max(1, round(images * n))`` of its ``n`` images (a third of 21-35 images: 7-12)
move into new identities of 1-3 images each (chunk sizes drawn
uniformly from {1, 2, 3}; the last chunk takes what is left). The
new identities join the tail (group D under the default thresholds); the identity they came from
keeps the rest of its images and may fall to B (or lower).

Draws, all from the split stream (``default_rng([seed, SPLIT_STREAM])``), in this order:
``permutation(A classes)[:round(share * |A|)]``; then for each drawn class in ascending label
order ``permutation(its images)[:m]`` (the moved images, in that order), cut into consecutive
chunks of ``integers(1, 4)`` images. New identity ``k`` (1, 2, ...) of ``NAME`` is named
``NAME~splitK``.
"""

from __future__ import annotations

import numpy as np

from tailface.data.groups import GroupThresholds
from tailface.data.perturb.labelling import Labelling
from tailface.errors import ConfigError, DataError

SPLIT_STREAM = 2201
MAX_CHUNK = 3


def split_rng(seed: int) -> np.random.Generator:
    """The generator of the split: ``default_rng([seed, 2201])``."""
    return np.random.default_rng([int(seed), SPLIT_STREAM])


def check_split(share: float, images: float) -> None:
    """ConfigError unless ``share`` is in [0, 1] and ``images`` in (0, 1]."""
    if not 0 <= share <= 1:
        raise ConfigError(f"--split-head: the share of A identities must be in [0, 1], got {share}")
    if not 0 < images <= 1:
        raise ConfigError(f"--split-head: the share of their images must be in (0, 1], got {images}")


def moved_count(images: float, n: int) -> int:
    """``max(1, round(images * n))``: rounded as the house rounds shares, so that a share written
    in decimals (0.33, 0.3333) moves the images a third would."""
    return max(1, int(round(images * n)))


def split_name(name: str, k: int) -> str:
    return f"{name}~split{k}"


def split_head(lab: Labelling, share: float, images: float, thresholds: GroupThresholds,
               seed: int) -> tuple[Labelling, dict]:
    """The split of the module doc on ``lab``: the new Labelling and the manifest section
    ``{"share", "images", "eligible", "identities": [{"identity", "images", "moved":
    [{"identity", "images": [ids]}]}]}`` (moved image ids in draw order)."""
    check_split(share, images)
    eligible = np.flatnonzero(lab.groups(thresholds) == "A")
    if not len(eligible):
        raise ConfigError(f"--split-head: no identity of group A (>= {thresholds.a} images) to split")
    rng = split_rng(seed)
    chosen = np.sort(rng.permutation(eligible)[:int(round(share * len(eligible)))])
    labels, names = lab.labels.copy(), list(lab.names)
    taken = set(names)
    records = []
    for cls in chosen:
        members = lab.members(int(cls))
        moved = rng.permutation(members)[:moved_count(images, len(members))]
        record: dict = {"identity": lab.names[cls], "images": len(members), "moved": []}
        start, k = 0, 0
        while start < len(moved):
            size = int(rng.integers(1, MAX_CHUNK + 1))
            chunk = moved[start:start + size]
            k += 1
            name = split_name(lab.names[cls], k)
            if name in taken:
                raise DataError(f"--split-head: the source already has an identity named {name!r}")
            taken.add(name)
            labels[chunk] = len(names)
            names.append(name)
            record["moved"].append({"identity": name, "images": lab.ids(chunk)})
            start += size
        records.append(record)
    section = {"share": share, "images": images, "eligible": len(eligible), "identities": records}
    return Labelling.make(lab.images, labels, names, lab.source_ids), section


def split_names(section: dict | None) -> dict[str, list[str]]:
    """Original identity -> the identities split off it, from a manifest's ``split`` section."""
    return {r["identity"]: [m["identity"] for m in r["moved"]] for r in (section or {}).get("identities", [])}
