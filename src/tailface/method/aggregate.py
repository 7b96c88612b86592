"""Step I: aggregate tail classes into super classes.

Tail class means of base-model features (Eq. 4) are clustered by k-means separately per tail
group (C and D). The number of super classes ``N_k`` is explicit or automatic: ``round(tail images
/ mean head-class size)`` so that a super class holds about as many images as a head class, split
between the groups by a ratio (paper C:D = 1:3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse

from tailface import faults
from tailface.atomic import write_text
from tailface.errors import ConfigError, DataError
from tailface.method.kmeans import kmeans
from tailface.method.partition import Partition


def class_means(features: np.ndarray, labels: np.ndarray, num_classes: int, normalize: bool = False) -> np.ndarray:
    """Mean feature of every class ``0 .. num_classes-1`` (Eq. 4); with ``normalize`` features are
    L2-normalised before averaging (for spherical clustering)."""
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if len(features) != len(labels):
        raise DataError(f"{len(features)} features for {len(labels)} labels")
    if normalize:
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    onehot = scipy.sparse.csr_matrix((np.ones(len(labels), np.float32), (labels, np.arange(len(labels)))),
                                     shape=(num_classes, len(labels)))
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        raise DataError(f"class {int(np.flatnonzero(counts == 0)[0])} has no feature to average")
    return np.asarray(onehot @ features) / counts[:, None].astype(np.float32)


def auto_num_super(head_images: int, num_head: int, tail_images: int) -> int:
    """``round(tail images / mean head-class size)``, at least 1."""
    if num_head <= 0 or head_images <= 0:
        raise ConfigError("automatic number of super classes needs head classes")
    return max(1, int(round(tail_images / (head_images / num_head))))


def split_clusters(total: int, ratio: dict[str, float], group_sizes: dict[str, int]) -> dict[str, int]:
    """Split ``total`` clusters between groups by ``ratio`` (largest remainders), then clamp every
    non-empty group to ``[1, its classes]`` and hand the excess or deficit to the other groups
    where they have room. Empty groups get 0. The sum is ``total`` unless that is impossible."""
    groups = [g for g, n in group_sizes.items() if n > 0]
    if not groups:
        return {g: 0 for g in group_sizes}
    if any(ratio.get(g, 0) <= 0 for g in groups):
        raise ConfigError(f"cluster ratio {ratio} must be positive for every non-empty tail group {groups}")
    total = min(max(total, len(groups)), sum(group_sizes[g] for g in groups))
    weights = np.array([ratio[g] for g in groups], dtype=np.float64)
    exact = total * weights / weights.sum()
    alloc = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - alloc), kind="stable")[: total - alloc.sum()]:
        alloc[i] += 1
    caps = np.array([group_sizes[g] for g in groups])
    alloc = np.clip(alloc, 1, caps)
    while alloc.sum() < total:  # clamping freed clusters: give them to the group with most room
        alloc[np.argmax(caps - alloc)] += 1
    while alloc.sum() > total:  # clamping added clusters: take them from the largest group
        alloc[np.argmax(np.where(alloc > 1, alloc, 0))] -= 1
    out = {g: 0 for g in group_sizes}
    out.update({g: int(a) for g, a in zip(groups, alloc)})
    return out


@dataclass
class Aggregation:
    """Result of Step I: ``super_of_tail[i]`` is the super class of tail class ``part.tail[i]``."""

    super_of_tail: np.ndarray
    group_of_super: np.ndarray  # 'C' or 'D' per super class
    info: dict = field(default_factory=dict)

    @property
    def num_super(self) -> int:
        return len(self.group_of_super)


def aggregate(tail_features: np.ndarray, tail_labels: np.ndarray, part: Partition, num_super="auto",
              ratio: dict[str, float] | None = None, normalize: bool = False, spherical: bool = False,
              init: str = "kmeans++", niter: int = 20, seed: int = 0) -> Aggregation:
    """Cluster the tail classes of ``part``. ``tail_features`` are base-model features of tail
    images whose ``tail_labels`` are ORIGINAL class ids (all in ``part.tail``). ``num_super`` is
    ``"auto"`` or an int; ``ratio`` maps group to weight (default C:D = 1:3)."""
    ratio = dict(ratio or {"C": 1.0, "D": 3.0})
    tail_labels = np.asarray(tail_labels, dtype=np.int64)
    position = np.full(len(part.counts), -1, dtype=np.int64)
    position[part.tail] = np.arange(part.num_tail)
    if len(tail_labels) and (position[tail_labels] < 0).any():
        raise DataError("aggregate: features given for a class that is not a tail class")
    means = class_means(tail_features, position[tail_labels], part.num_tail, normalize=normalize or spherical)
    if num_super == "auto":
        total = auto_num_super(part.head_images(), part.num_head, part.tail_images())
    else:
        try:
            total = int(num_super)
        except (TypeError, ValueError):
            raise ConfigError(f"num_super must be 'auto' or a positive integer, got {num_super!r}") from None
        if total < 1:
            raise ConfigError(f"num_super must be a positive integer, got {total}")
    tail_group = part.tail_group()
    sizes = {g: int((tail_group == g).sum()) for g in ("C", "D")}
    per_group = split_clusters(total, ratio, sizes)

    super_of_tail = np.full(part.num_tail, -1, dtype=np.int64)
    group_of_super: list[str] = []
    stats = {}
    for g in ("C", "D"):
        members = np.flatnonzero(tail_group == g)
        if len(members) == 0:
            continue
        faults.point("cluster")
        result = kmeans(means[members], per_group[g], init=init, niter=niter, seed=seed, spherical=spherical)
        super_of_tail[members] = len(group_of_super) + result.assignment
        group_of_super.extend([g] * len(result.centroids))
        stats[g] = {"classes": len(members), "requested": per_group[g], "clusters": len(result.centroids),
                    "inertia": result.inertia}
    info = {"num_super_requested": total, "num_super": len(group_of_super), "ratio": ratio, "groups": stats,
            "normalize": bool(normalize), "spherical": bool(spherical), "init": init, "niter": niter, "seed": seed}
    return Aggregation(super_of_tail, np.array(group_of_super), info)


def save_aggregation(path: str | Path, agg: Aggregation, part: Partition, class_names: list[str]) -> None:
    """JSON: the super class of every tail class (by name and original id), written atomically."""
    path = Path(path)
    doc = {
        "num_head": part.num_head, "num_tail": part.num_tail, "num_super": agg.num_super,
        "head_classes": part.head.tolist(),
        "tail_classes": part.tail.tolist(),
        "super_of_tail": agg.super_of_tail.tolist(),
        "group_of_super": agg.group_of_super.tolist(),
        "super_of_class_name": {class_names[c]: int(s) for c, s in zip(part.tail, agg.super_of_tail)},
        "info": agg.info,
    }
    write_text(path, json.dumps(doc, indent=1))


def load_aggregation(path: str | Path, part: Partition) -> Aggregation:
    """Read :func:`save_aggregation` output, checking it matches the partition."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        agg = Aggregation(np.asarray(doc["super_of_tail"], dtype=np.int64),
                          np.asarray(doc["group_of_super"]), doc.get("info", {}))
        tail = np.asarray(doc["tail_classes"], dtype=np.int64)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: cannot read super classes ({exc})") from None
    if not np.array_equal(tail, part.tail):
        raise DataError(f"{path}: tail classes do not match the training set ({len(tail)} vs {part.num_tail})")
    if agg.super_of_tail.min() < 0 or set(np.unique(agg.super_of_tail)) != set(range(agg.num_super)):
        raise DataError(f"{path}: super classes must be 0..{agg.num_super - 1}, each non-empty")
    return agg
