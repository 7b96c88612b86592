"""Protocol ``synthetic``: held-out synthetic identities (tailface.eval.synthetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailface.errors import ProtocolError
from tailface.eval.plots import plot_roc
from tailface.eval.protocols.registry import EvalOptions, Features, Protocol, register_protocol
from tailface.eval.synthetic import evaluate_synthetic


def evaluate(features: Features, options: EvalOptions) -> dict:
    if features.labels is None:
        raise ProtocolError(f"{features.source}: protocol 'synthetic' needs labels in the features file")
    x, labels = np.asarray(features.features), np.asarray(features.labels)
    if features.image_ids is not None:  # gallery = first image of each class in image-id order, not file order
        order = np.argsort(np.asarray([str(i) for i in features.image_ids]), kind="stable")
        x, labels = x[order], labels[order]
    return evaluate_synthetic(x, labels, source=features.source)


def summary(m: dict) -> list[tuple[str, str]]:
    return [("VR@FAR=0.1%", f"{100 * m['vr_far_0.1%']:.2f}"), ("VR@FAR=1%", f"{100 * m['vr_far_1%']:.2f}"),
            ("DIR@FAR=1%,rank1", f"{100 * m['dir_far_1%_rank1']:.2f}")]


def plots(m: dict, out_dir: Path) -> list[Path]:
    v = m["verification"]
    return [plot_roc(v["far"], v["vr"], out_dir / "synthetic_roc.png", title="Synthetic held-out verification ROC")]


register_protocol(Protocol("synthetic", "synthetic", evaluate, summary, plots))
