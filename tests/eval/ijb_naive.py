"""Naive float64 references of the IJB protocol (plain Python and NumPy, brute force over pairs and
searches), for tests/eval/test_ijb_*.py and benchmarks/bench_ijb.py.

Written from the conventions in docs/evaluation.md, independently of tailface.eval.ijb*: its own
file reading, loops over templates, media and pairs, its own ROC. Keyword switches change one
convention each, so the tests can show that a change is caught."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


def read_release(root: Path, kind: str) -> dict:
    meta = Path(root) / "meta"
    tid_mid = [line.split() for line in (meta / f"{kind}_face_tid_mid.txt").read_text().splitlines() if line.strip()]
    pts = [line.split() for line in (meta / f"{kind}_name_5pts_score.txt").read_text().splitlines() if line.strip()]
    pairs = [tuple(int(v) for v in line.split())
             for line in (meta / f"{kind}_template_pair_label.txt").read_text().splitlines() if line.strip()]
    files = {"ijbc": ("ijbc_1N_gallery_G1.csv", "ijbc_1N_gallery_G2.csv", "ijbc_1N_probe_mixed.csv"),
             "ijbb": ("ijbb_1N_gallery_S1.csv", "ijbb_1N_gallery_S2.csv", "ijbb_1N_probe_mixed.csv")}[kind]
    lists = []
    for name in files:
        with open(meta / name, newline="") as f:
            rows = list(csv.reader(f))[1:]
        lists.append({int(r[0]): int(r[1]) for r in rows})
    return {"names": [r[0] for r in tid_mid], "templates": [int(r[1]) for r in tid_mid],
            "medias": [int(r[2]) for r in tid_mid], "scores": [float(r[-1]) for r in pts],
            "pairs": pairs, "g1": lists[0], "g2": lists[1], "probe": lists[2]}


def pool(features, scores, templates, medias, norm="keep", detector=True, media_reduce="mean",
         template_reduce="sum", normalize=True) -> dict:
    """{template id: float64 feature}, one template at a time (the anchors' loops)."""
    x = np.asarray(features, np.float64)
    out = {}
    for t in sorted(set(templates)):
        rows = [i for i, tt in enumerate(templates) if tt == t]
        media_feats = []
        for m in sorted({medias[i] for i in rows}):
            frames = []
            for i in rows:
                if medias[i] == m:
                    f = x[i].copy()
                    if norm == "unit":
                        f = f / np.sqrt(np.sum(f * f))
                    if detector:
                        f = f * scores[i]
                    frames.append(f)
            total = frames[0].copy()
            for f in frames[1:]:
                total = total + f
            media_feats.append(total / len(frames) if media_reduce == "mean" else total)
        v = media_feats[0].copy()
        for f in media_feats[1:]:
            v = v + f
        if template_reduce == "mean":
            v = v / len(media_feats)
        out[t] = v / np.sqrt(np.sum(v * v)) if normalize else v
    return out


def pair_scores(pooled: dict, pairs) -> np.ndarray:
    return np.array([float(np.dot(pooled[a], pooled[b])) for a, b, _ in pairs])


def tar_exact(genuine, impostor, fars, accept_ties=True) -> list:
    imp = sorted(impostor, reverse=True)
    n, out = len(imp), []
    for f in fars:
        k = int(math.floor(f * n + 0.5))
        if k == 0:
            out.append(float(np.mean([g > imp[0] for g in genuine])))
        elif k >= n:
            out.append(1.0)
        else:
            t = imp[k - 1]
            out.append(float(np.mean([(g >= t) if accept_ties else (g > t) for g in genuine])))
    return out


def roc(genuine, impostor, drop_intermediate=True) -> tuple[list, list, list]:
    """scikit-learn's roc_curve, by brute force: counts at every distinct score."""
    thresholds = sorted(set(list(genuine) + list(impostor)), reverse=True)
    tps = [sum(1 for g in genuine if g >= t) for t in thresholds]
    fps = [sum(1 for i in impostor if i >= t) for t in thresholds]
    if drop_intermediate and len(fps) > 2:
        keep = [0] + [j for j in range(1, len(fps) - 1)
                      if fps[j + 1] - 2 * fps[j] + fps[j - 1] != 0 or tps[j + 1] - 2 * tps[j] + tps[j - 1] != 0]
        keep += [len(fps) - 1]
        thresholds, tps, fps = [thresholds[j] for j in keep], [tps[j] for j in keep], [fps[j] for j in keep]
    fpr = [0.0] + [f / len(impostor) for f in fps]
    tpr = [0.0] + [t / len(genuine) for t in tps]
    return fpr, tpr, [math.inf] + thresholds


def tar_nearest(fpr, tpr, fars, last_of_equal=True) -> list:
    out = []
    for f in fars:
        best, best_j = math.inf, -1
        for j, x in enumerate(fpr):
            d = abs(x - f)
            if d < best or (last_of_equal and d == best):
                best, best_j = d, j
        out.append(tpr[best_j])
    return out


def search(pooled: dict, gallery: dict, probe: dict, fpirs, ranks, merged=False, rank_ties_before=True,
           exact_ge=True, anchor_offset=1) -> dict:
    """1:N by looping over searches; gallery in ascending template id."""
    g_ids = sorted(gallery)
    mated, mate, rank, top, top_nonmate, nonmate_pairs = [], [], [], [], [], []
    for p in sorted(probe):
        s = [float(np.dot(pooled[p], pooled[g])) for g in g_ids]
        mates = [j for j, g in enumerate(g_ids) if gallery[g] == probe[p]]
        top.append(max(s))
        if mates:
            j = mates[0]
            order = sorted(range(len(s)), key=lambda c: -s[c])  # stable: ties keep gallery order
            if not rank_ties_before:
                order = sorted(range(len(s)), key=lambda c: (-s[c], c != j))
            mated.append(True)
            mate.append(s[j])
            rank.append(order.index(j) + 1)
            others = [s[c] for c in range(len(s)) if c != j]
        else:
            mated.append(False)
            mate.append(-math.inf)
            rank.append(0)
            others = s
        top_nonmate.append(max(others) if others else -math.inf)
        nonmate_pairs += others
    mated_idx = [i for i, m in enumerate(mated) if m]
    nonmated_tops = sorted([top[i] for i, m in enumerate(mated) if not m], reverse=True)
    n = len(nonmated_tops)
    out = {"rank": {str(k): float(np.mean([rank[i] <= k for i in mated_idx])) for k in ranks},
           "hits": {str(k): sum(rank[i] <= k for i in mated_idx) for k in ranks}, "mated": len(mated_idx)}
    exact, anchor = [], []
    for f in fpirs:
        if n == 0:
            exact.append(None)
        else:
            k = int(math.floor(f * n + 0.5))
            if k == 0:
                ok = [rank[i] == 1 and mate[i] > nonmated_tops[0] for i in mated_idx]
            elif k >= n:
                ok = [rank[i] == 1 for i in mated_idx]
            else:
                t = nonmated_tops[k - 1]
                ok = [rank[i] == 1 and ((mate[i] >= t) if exact_ge else (mate[i] > t)) for i in mated_idx]
            exact.append(float(np.mean(ok)))
        if merged:
            pairs_desc = sorted(nonmate_pairs, reverse=True)
            t = pairs_desc[math.ceil(len(probe) * f) - 1]
            anchor.append(float(np.mean([mate[i] > t for i in mated_idx])))
        elif n == 0:
            anchor.append(None)
        else:
            t = nonmated_tops[max(int(n * f) - anchor_offset, 0)]
            anchor.append(float(np.mean([mate[i] > top_nonmate[i] and mate[i] > t for i in mated_idx])))
    out["exact"], out["anchor"] = exact, anchor
    return out


def numpy_reference(templates, first, second, labels, fars, batch=100_000):
    """The 1:1 figures the anchors' way, in NumPy (for benchmarks/bench_ijb.py): scores by gathering
    both template features of every pair in batches of 100,000 pairs (arcface_torch eval_ijbc.py's
    ``verification``), the ROC as scikit-learn's ``roc_curve`` computes it (a stable sort of all
    scores, cumulative counts at the distinct ones, collinear points dropped), the nearest-point
    reading, and the exact reading from every impostor score sorted. Returns (scores, exact, nearest)."""
    scores = np.empty(len(first))
    for s in range(0, len(first), batch):
        scores[s:s + batch] = np.sum(templates[first[s:s + batch]] * templates[second[s:s + batch]], -1)
    order = np.argsort(scores, kind="mergesort")[::-1]
    ordered, positive = scores[order], labels[order] == 1
    idx = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    tps = np.cumsum(positive)[idx]
    fps = 1 + idx - tps
    keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
    fps, tps = np.r_[0, fps[keep]], np.r_[0, tps[keep]]
    fpr, tpr = (fps / fps[-1])[::-1], (tps / tps[-1])[::-1]
    nearest = [float(tpr[np.argmin(np.abs(fpr - f))]) for f in fars]
    impostor = np.sort(scores[labels == 0])[::-1]
    genuine = scores[labels == 1]
    exact = []
    for f in fars:
        k = int(np.floor(f * len(impostor) + 0.5))
        if k == 0:
            exact.append(float(np.mean(genuine > impostor[0])))
        elif k >= len(impostor):
            exact.append(1.0)
        else:
            exact.append(float(np.mean(genuine >= impostor[k - 1])))
    return scores, exact, nearest
