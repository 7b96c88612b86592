"""Fig. 1: images per identity of the training set, sorted (``OUT/fig1.png``)."""

from __future__ import annotations

import numpy as np

from tailface.data.analysis import plot_class_sizes
from tailface.evidence.targets.registry import Inputs, Report, Target, register_target


def write(target: Target, inputs: Inputs) -> Report:
    plot_class_sizes(inputs.faceset.class_counts(), inputs.out / "fig1.png", inputs.thresholds)
    counts = np.sort(inputs.faceset.class_counts())[::-1]
    numbers = {"identities": len(counts), "images": int(counts.sum()), "largest": int(counts[0]),
               "median": int(np.median(counts)), "identities_with_1_to_3_images": int((counts <= 3).sum())}
    return Report("\n".join([
        "![images per identity, sorted](fig1.png)", "",
        f"Ours: {numbers['identities']:,} identities, {numbers['images']:,} images; the largest identity has "
        f"{numbers['largest']} images, the median {numbers['median']}, "
        f"{numbers['identities_with_1_to_3_images']:,} identities have 1-3 images.", "",
        "Paper, Fig. 1: images per identity of the MS-Celeb-1M subset, sorted: a long tail from 217 images down "
        "to 1, 30.7% of the identities with 1-3 images (Table 1)."]), numbers)


register_target(Target("fig1", "Fig. 1: images per identity", (), (), write))
