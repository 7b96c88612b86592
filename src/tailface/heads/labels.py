"""Label checks shared by the heads: a clear error instead of an index error deep in a kernel."""

from __future__ import annotations

import torch


def checked_labels(labels: torch.Tensor, num_classes: int, batch_size: int) -> torch.Tensor:
    """``labels`` as int64, after checking one label per feature, each in ``[0, num_classes)``."""
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise ValueError(f"expected {batch_size} labels (one per feature), got shape {tuple(labels.shape)}")
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {int(labels.min())}..{int(labels.max())}")
    return labels
