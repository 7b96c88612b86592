"""Does aggregation reunite a split person? Step I's clustering read against a perturbation
manifest (issue 22, item 3).

A split (``tailface perturb --split-head``) cuts images of one person into several small
identities; the paper's aggregation step promises that super classes gather identities the base
model cannot tell apart, so a split person's identities should share a super class. For each
split-off identity ``f`` in the clustering (``cluster/super_classes.json`` of a method cell,
:func:`tailface.method.aggregate.save_aggregation`), its **siblings** are the other identities of
the same person in the clustering (the other split-off ones and the original identity when it is
a tail class too). ``f`` is **reunited** when its super class is that of at least one sibling.
Identities without a sibling in the clustering are not counted.

**Chance**: the same super-class sizes, classes assigned at random within each tail group (the
aggregation clusters C and D apart). For ``f`` in group ``g`` with ``N`` classes, super classes of
``n_j`` classes and ``k`` siblings in ``g``,

    P(reunited) = 1 - sum_j (n_j / N) * prod_{i=0}^{k-1} (N - n_j - i) / (N - 1 - i)

(``f`` in super class ``j``, none of the ``k`` siblings among the other ``n_j - 1`` of it); 0 when
``k = 0``. The chance level is the mean of this over the counted identities.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailface.data.perturb.split import split_names
from tailface.errors import DataError


@dataclass(frozen=True)
class Reunion:
    fakes: int  # split-off identities in the manifest
    counted: int  # of them: in the clustering, with at least one sibling in it
    reunited: int  # of those: in the super class of at least one sibling
    chance: float  # expected share under random super classes of the same sizes

    @property
    def share(self) -> float:
        """``reunited / counted`` (nan when nothing is counted)."""
        return self.reunited / self.counted if self.counted else math.nan


def reunion(super_of: Mapping[str, int], group_of_super: Sequence[str],
            siblings: Mapping[str, Sequence[str]]) -> Reunion:
    """The module doc's measure: ``super_of`` maps each tail class name to its super class,
    ``group_of_super`` gives each super class's group, ``siblings`` maps each original identity
    to the identities split off it."""
    groups = np.asarray(group_of_super)
    sizes = np.bincount(np.fromiter(super_of.values(), dtype=np.int64), minlength=len(groups))
    fakes = counted = reunited = 0
    chance = 0.0
    for original, split in siblings.items():
        for fake in split:
            fakes += 1
            if fake not in super_of:
                continue
            others = [s for s in [original, *split] if s != fake and s in super_of]
            if not others:
                continue
            counted += 1
            reunited += any(super_of[s] == super_of[fake] for s in others)
            chance += _chance(sizes[groups == groups[super_of[fake]]],
                              sum(groups[super_of[s]] == groups[super_of[fake]] for s in others))
    return Reunion(fakes, counted, reunited, chance / counted if counted else math.nan)


def _chance(sizes: np.ndarray, k: int) -> float:
    if k == 0:
        return 0.0
    n = int(sizes.sum())
    apart = sum(nj / n * math.prod((n - nj - i) / (n - 1 - i) for i in range(k)) for nj in map(int, sizes))
    return 1.0 - apart


def split_reunion(super_classes: str | Path, manifest: str | Path) -> Reunion:
    """:func:`reunion` of a method cell's ``cluster/super_classes.json`` against the
    ``manifest.json`` of the perturbed set it trained on. DataError when a file cannot be read."""
    cluster, changes = _read(super_classes, "super classes"), _read(manifest, "perturbation manifest")
    try:
        super_of = {str(k): int(v) for k, v in cluster["super_of_class_name"].items()}
        group_of_super = [str(g) for g in cluster["group_of_super"]]
        siblings = split_names(changes.get("split"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{super_classes} / {manifest}: not a clustering and a perturbation manifest ({exc})") from None
    if super_of and max(super_of.values()) >= len(group_of_super):
        raise DataError(f"{super_classes}: a super class id is beyond group_of_super")
    return reunion(super_of, group_of_super, siblings)


def _read(path: str | Path, what: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: the {what} is not a JSON object")
    return doc
