"""Naive float64 references of Semi-Siamese Training: explicit loops over pairs and queue slots,
written from the equations of docs/method.md ("Semi-Siamese Training"), independent of
``tailface.method.sst``."""

from __future__ import annotations

import torch
from tests.heads.naive import cross_entropy_one, target_cos


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.sqrt(torch.dot(v, v))


def with_batch(rows: list, labels: list, ptr: int, features, batch_labels) -> tuple[list, list]:
    """The queue (lists of rows and labels) with entry i of the batch in slot (ptr + i) mod Q."""
    rows, labels = list(rows), list(labels)
    for i in range(len(batch_labels)):
        slot = (ptr + i) % len(rows)
        rows[slot] = features[i]
        labels[slot] = int(batch_labels[i])
    return rows, labels


def loss(f1, f2, g1, g2, y, queue, queue_labels, ptr, kind="none", s=1.0, m=0.0, offset=0):
    """(L_1 + L_2) / 2 for the probe features f1, f2 (raw, this rank's pairs offset..offset+n-1),
    the unit gallery features g1, g2 and labels y of the global batch, and the queue."""
    rows0 = [queue[j] for j in range(queue.shape[0])]
    labels0 = [int(v) for v in queue_labels]
    total = torch.zeros((), dtype=torch.float64)
    for probe, gallery in ((f1, g2), (f2, g1)):
        rows, labels = with_batch(rows0, labels0, ptr, gallery, y)
        direction = torch.zeros((), dtype=torch.float64)
        for i in range(probe.shape[0]):
            target, own = (ptr + offset + i) % len(rows), int(y[offset + i])
            p = unit(probe[i])
            logits, position = [], None
            for j in range(len(rows)):
                if labels[j] == -1 or (labels[j] == own and j != target):
                    continue  # an empty slot, or the same identity: not a negative
                c = torch.dot(p, rows[j])
                if j == target:
                    position = len(logits)
                    logits.append(s * target_cos(c, kind, m))
                else:
                    logits.append(s * c)
            assert position is not None
            direction = direction + cross_entropy_one(logits, position)
        total = total + direction / probe.shape[0]
    return total / 2


def momentum(gallery: list[torch.Tensor], probe: list[torch.Tensor], alpha: float) -> list[torch.Tensor]:
    """Element by element: alpha * gallery + (1 - alpha) * probe."""
    out = []
    for g, p in zip(gallery, probe):
        flat = [alpha * a + (1 - alpha) * b for a, b in zip(g.reshape(-1).tolist(), p.reshape(-1).tolist())]
        out.append(torch.tensor(flat, dtype=torch.float64).reshape(g.shape))
    return out


def shifted_mirror(image: torch.Tensor, dy: int, dx: int, shift: int) -> torch.Tensor:
    """The image (C x H x W) mirrored, then moved by (dy - shift, dx - shift) pixels with its edge
    pixels repeated: out[y, x] = mirror[clamp(y + dy - shift), clamp(x + dx - shift)]."""
    c, h, w = image.shape
    out = torch.empty_like(image)
    for y in range(h):
        for x in range(w):
            sy = min(max(y + dy - shift, 0), h - 1)
            sx = min(max(x + dx - shift, 0), w - 1)
            out[:, y, x] = image[:, sy, w - 1 - sx]
    return out
