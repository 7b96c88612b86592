"""MegaFace-style identification for any probe set and distractor set.

For each probe identity (>= 2 images) and each of its images ``a`` in turn, ``a`` joins the
distractors as the only gallery image of that identity (the *mate*); every other image ``b`` of the
identity is a probe. With ``s`` = cosine score of L2-normalised features, the mate's rank for probe
``b`` is ``1 + #{distractors d : s(b, d) >= s(b, a)}``: a distractor that ties the mate ranks ahead
of it, so a rank-1 hit needs the mate strictly above every distractor. CMC(r) = fraction of all
(mate, probe) pairs whose rank is <= r; reported for r = 1..10 at each distractor count.

Distractor counts 10, 100, ..., 1M (those not above the number available): nested subsets, the
first ``n`` distractors of one permutation drawn from ``seed``. Only the 10 best distractor scores
of each probe image are needed; they come from faiss's exact inner-product search (``faiss.knn``, as IndexFlatIP),
distractors in chunks merged into a running top-10, so memory stays bounded and one pass over the
distractors serves every count. :func:`synthetic_distractors` streams random unit vectors
(deterministic by seed) for timing at 1M.

Proxy on LFW (:func:`lfw_proxy_split`): probes = identities with >= 4 images; distractors = the
images of identities with exactly 1 image (disjoint identities).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import faiss
import numpy as np
import torch

from tailface.errors import ProtocolError
from tailface.eval.megaface_io import read_megaface_feature, write_megaface_feature  # noqa: F401
from tailface.eval.vectors import l2_normalize

DISTRACTOR_COUNTS = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
MAX_RANK = 10
PROXY_MIN_IMAGES = 4


def _chunks(distractors, size: int) -> Iterator[np.ndarray]:
    if isinstance(distractors, np.ndarray):
        for i in range(0, len(distractors), size):
            yield distractors[i:i + size]
    else:
        yield from distractors


def top_distractor_scores(probes: np.ndarray, distractors, counts: Iterable[int], k: int = MAX_RANK,
                          chunk: int = 65_536) -> dict[int, np.ndarray]:
    """For each count ``n``: the ``k`` best scores (descending; -inf padding) of every probe among
    the first ``n`` distractors. ``distractors``: a normalised float32 array or an iterable of
    such chunks (in order)."""
    counts = sorted(set(int(c) for c in counts))
    probes = np.ascontiguousarray(probes, dtype=np.float32)
    best = np.full((len(probes), k), -np.inf, np.float32)
    out: dict[int, np.ndarray] = {}
    seen = 0
    pending = list(counts)
    for block in _chunks(distractors, chunk):
        block = np.ascontiguousarray(block, dtype=np.float32)
        while len(block) and pending:
            piece = block[: pending[0] - seen]       # never cross a requested count
            block = block[len(piece):]
            scores, _ = faiss.knn(probes, piece, min(k, len(piece)), metric=faiss.METRIC_INNER_PRODUCT)
            merged = np.concatenate([best, scores], axis=1)
            best = -np.sort(-merged, axis=1)[:, :k]
            seen += len(piece)
            if seen == pending[0]:
                out[pending.pop(0)] = best.copy()
        if not pending:
            break
    if pending:
        raise ProtocolError(f"only {seen} distractors available, {pending[0]} requested")
    return out


def cmc_from_top(probes: np.ndarray, labels: np.ndarray, top: np.ndarray, max_rank: int = MAX_RANK) -> np.ndarray:
    """CMC over all (mate, probe) pairs of identities with >= 2 images, given each probe image's
    best distractor scores ``top`` (descending)."""
    hits = np.zeros(max_rank)
    total = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        s = probes[members] @ probes[members].T           # s[b, a]: probe b against mate a
        off = ~np.eye(len(members), dtype=bool)
        mate = s[off]                                     # all ordered (b, a), b != a
        row_top = np.repeat(top[members], len(members) - 1, axis=0)
        rank = 1 + (row_top >= mate[:, None]).sum(axis=1)
        hits += np.bincount(np.minimum(rank, max_rank + 1), minlength=max_rank + 2)[1:max_rank + 1]
        total += len(mate)
    if total == 0:
        raise ProtocolError("no probe identity has two or more images")
    return np.cumsum(hits) / total


def megaface_identification(probe_feats, probe_labels, distractors, counts=DISTRACTOR_COUNTS,
                            seed: int = 0, source: str = "features") -> dict:
    """CMC (ranks 1..10) and rank-1 per distractor count. ``distractors``: a feature array (a
    seeded permutation orders it; subsets are its prefixes) or an iterable of normalised chunks
    already in order with ``counts`` fitting its length."""
    probes = l2_normalize(probe_feats, f"{source} (probes)")
    labels = np.asarray(probe_labels)
    if len(labels) != len(probes):
        raise ProtocolError(f"{source}: {len(labels)} probe labels for {len(probes)} probe rows")
    if isinstance(distractors, np.ndarray) or not hasattr(distractors, "__next__"):
        d = l2_normalize(np.asarray(distractors), f"{source} (distractors)")
        d = d[np.random.default_rng(seed).permutation(len(d))]
        counts = [c for c in counts if c <= len(d)] or [len(d)]
    else:
        d = distractors
    tops = top_distractor_scores(probes, d, counts)
    result: dict[str, Any] = {"protocol": "megaface", "distractor_counts": [], "rank1": [], "cmc": []}
    for n in sorted(tops):
        cmc = cmc_from_top(probes, labels, tops[n])
        result["distractor_counts"].append(n)
        result["rank1"].append(float(cmc[0]))
        result["cmc"].append(cmc.tolist())
    result["n_probe_images"] = int(len(probes))
    return result


def synthetic_distractors(total: int, dim: int, seed: int = 0, chunk: int = 65_536) -> Iterator[np.ndarray]:
    """Random unit vectors, ``chunk`` rows at a time; the same seed gives the same sequence."""
    for i, start in enumerate(range(0, total, chunk)):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + i)
        x = torch.randn(min(chunk, total - start), dim, generator=gen)
        yield torch.nn.functional.normalize(x, dim=1).numpy()


def lfw_proxy_split(labels: np.ndarray, min_images: int = PROXY_MIN_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """``(probe_rows, distractor_rows)``: images of identities with >= ``min_images`` images, and
    images of identities with exactly one image."""
    labels = np.asarray(labels)
    counts = np.bincount(np.unique(labels, return_inverse=True)[1])
    per_image = counts[np.unique(labels, return_inverse=True)[1]]
    return np.flatnonzero(per_image >= min_images), np.flatnonzero(per_image == 1)
