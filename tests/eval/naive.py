"""Straightforward reference implementations (sort every score) for the tests and benchmarks."""

import numpy as np


def matlab_round(x):
    return int(np.floor(x + 0.5))


def normalize(x):
    x = np.asarray(x, np.float32)
    return (x / np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None]).astype(np.float32)


def rates_from_sorted(genuine, impostor_desc, fars):
    n = len(impostor_desc)
    out = []
    for f in fars:
        k = matlab_round(f * n)
        if k == 0:
            out.append(np.mean(genuine > impostor_desc[0]))
        elif k >= n:
            out.append(1.0)
        else:
            out.append(np.mean(genuine >= impostor_desc[k - 1]))
    return np.array(out)


def verification(x, labels, fars):
    x = normalize(x).astype(np.float64)
    s = x @ x.T
    i, j = np.triu_indices(len(x), 1)
    scores = s[i, j]
    same = labels[i] == labels[j]
    return rates_from_sorted(scores[same], np.sort(scores[~same])[::-1], fars)


def openset(gallery, gallery_labels, probes, probe_labels, fars, ranks):
    s = normalize(probes).astype(np.float64) @ normalize(gallery).astype(np.float64).T
    dirs = np.zeros((len(ranks), len(fars)))
    gen_scores, gen_ranks, imp = [], [], []
    for p in range(len(probes)):
        match = gallery_labels == probe_labels[p]
        if not match.any():
            imp.append(s[p].max())
            continue
        masked = np.where(match, s[p], -np.inf)
        mate = int(np.argmax(masked))
        order = np.argsort(-s[p], kind="stable")
        gen_scores.append(s[p, mate])
        gen_ranks.append(int(np.flatnonzero(order == mate)[0]) + 1)
    gen_scores, gen_ranks = np.array(gen_scores), np.array(gen_ranks)
    imp = np.sort(np.array(imp))[::-1]
    n = len(imp)
    for fi, f in enumerate(fars):
        k = matlab_round(f * n)
        if k == 0:
            acc = gen_scores > imp[0]
        elif k >= n:
            acc = np.ones(len(gen_scores), bool)
        else:
            acc = gen_scores >= imp[k - 1]
        for ri, r in enumerate(ranks):
            dirs[ri, fi] = np.mean(acc & (gen_ranks <= r))
    return dirs
