"""How good are the super classes? Step I's clustering measured on a finished ``ours`` cell.

Inputs are the cell's own files: ``features/tail.npz`` (the base model's feature of every tail
image) and ``cluster/super_classes.json`` (the super class of every tail class). Per tail group
(C, D), with ``mu_c`` the mean feature of class ``c`` and ``S(c)`` its super class:

- **k-means quality**: the inertia ``sum_c ||mu_c - centroid_S(c)||^2`` of the method's k-means
  against scikit-learn's ``KMeans`` (k-means++, 10 restarts) at the same ``k`` (ratio > 1: ours is
  worse). scikit-learn is optional; without it the column is empty.
- **look-alike purity**: for each tail class, is its nearest other tail class (Euclidean, on the
  class means the clustering saw) in the same super class? Against chance, ``sum_k (n_k / n)^2``
  with ``n_k`` the classes of super class ``k``. High purity means that a super class gathers
  identities the base model confuses, which is what the dispersion step is meant to separate.
- **super-class accuracy vs identity accuracy**: each image of a class with >= 2 images assigned
  to the nearest super-class centroid (mean of its classes' means) and to the nearest class mean,
  the image left out of its own class mean and super-class centroid (leave-one-out). The first is the task the prototype
  stage learns; if it is not much easier than the second, aggregation gains little.
"""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np

from tailface.method.aggregate import class_means


def _nearest_other(queries: np.ndarray, centers: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the nearest of ``centers`` other than ``centers[own[i]]``: its index and
    squared distance (-1 and inf when there is none). faiss, so memory stays linear in the rows."""
    index = faiss.IndexFlatL2(centers.shape[1])
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    dist, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(2, len(centers)))
    second = idx[:, 0] == own  # the nearest is the query's own centre: take the next one
    rows = np.arange(len(queries))
    col = second.astype(np.int64)
    if idx.shape[1] == 1:  # a single centre: no other one
        return np.full(len(queries), -1), np.where(second, np.inf, dist[:, 0].astype(np.float64))
    other, d = idx[rows, col], dist[rows, col].astype(np.float64)
    return other, np.where(other < 0, np.inf, d)


def group_quality(features: np.ndarray, labels: np.ndarray, assignment: np.ndarray, seed: int = 0) -> dict:
    """Quality of one group's clustering. ``labels``: 0..C-1 for the group's classes;
    ``assignment[c]``: the super class of class ``c`` (any integers)."""
    features = np.asarray(features, np.float64)
    num_classes = len(assignment)
    means = class_means(features, labels, num_classes).astype(np.float64)
    _, cluster = np.unique(assignment, return_inverse=True)
    k = int(cluster.max()) + 1
    centroids = class_means(means, cluster, k).astype(np.float64)
    inertia = float(((means - centroids[cluster]) ** 2).sum())
    reference = _sklearn_inertia(means, k, seed)

    nearest, _ = _nearest_other(means, means, np.arange(num_classes))
    look_alike = float((cluster[nearest] == cluster).mean())
    shares = np.bincount(cluster, minlength=k) / num_classes
    chance = float((shares ** 2).sum())

    counts = np.bincount(labels, minlength=num_classes)
    keep = counts[labels] >= 2
    x, y = features[keep], labels[keep]
    if not len(y):
        identity_acc = super_acc = float("nan")
    else:
        loo = (means[y] * counts[y, None] - x) / (counts[y, None] - 1)  # own class mean without the image
        members = np.bincount(cluster, minlength=k)[cluster[y], None]
        own_centroid = centroids[cluster[y]] + (loo - means[y]) / members  # its super class, the image left out
        _, other_class = _nearest_other(x, means, y)
        _, other_super = _nearest_other(x, centroids, cluster[y])
        identity_acc = float((((x - loo) ** 2).sum(1) < other_class).mean())
        super_acc = float((((x - own_centroid) ** 2).sum(1) < other_super).mean())
    return {"classes": num_classes, "super_classes": k, "inertia": inertia, "sklearn_inertia": reference,
            "look_alike_purity": look_alike, "chance_purity": chance, "images_scored": int(len(y)),
            "identity_accuracy": identity_acc, "super_class_accuracy": super_acc}


def _sklearn_inertia(means: np.ndarray, k: int, seed: int) -> float | None:
    try:  # an optional dependency (the `evidence` extra): imported where it is used
        from sklearn.cluster import KMeans
    except ImportError:
        return None
    return float(KMeans(k, init="k-means++", n_init=10, random_state=seed).fit(means).inertia_)


def cell_quality(cell: Path) -> dict[str, dict]:
    """``group_quality`` for groups C and D of a finished ``ours`` cell (``cells/ours/seed<k>``)."""
    z = np.load(cell / "features" / "tail.npz")
    info = json.loads((cell / "cluster" / "super_classes.json").read_text())
    tail = np.asarray(info["tail_classes"])
    super_of_tail = np.asarray(info["super_of_tail"])
    group_of_super = np.asarray(info["group_of_super"])
    position = {int(c): i for i, c in enumerate(tail)}
    tail_index = np.array([position[int(c)] for c in z["labels"]])
    out = {}
    for group in ("C", "D"):
        classes = np.flatnonzero(group_of_super[super_of_tail] == group)  # tail positions of this group
        if len(classes) < 2:
            continue
        local = np.full(len(tail), -1)
        local[classes] = np.arange(len(classes))
        rows = local[tail_index] >= 0
        out[group] = group_quality(z["features"][rows], local[tail_index[rows]], super_of_tail[classes])
    return out
