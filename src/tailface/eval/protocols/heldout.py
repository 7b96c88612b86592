"""Protocol ``heldout``: identities of the training data kept out of training (``data.holdout``).

The same measurements as BLUFR, on a user's own data: verification over all pairs of the held-out
images (VR at FAR 0.1% and 1%) and open-set identification (the first image of half of the
held-out identities is the gallery; their other images are genuine probes, every image of the
other half an impostor probe; DIR at FAR 1%, rank 1), computed by
:func:`tailface.eval.synthetic.evaluate_synthetic`.
"""

from __future__ import annotations

from pathlib import Path

from tailface.eval.plots import plot_roc
from tailface.eval.protocols import synthetic as _synthetic
from tailface.eval.protocols.registry import EvalOptions, Features, Protocol, register_protocol


def evaluate(features: Features, options: EvalOptions) -> dict:
    result = _synthetic.evaluate(features, options)
    result["protocol"] = "heldout"
    return result


def plots(m: dict, out_dir: Path) -> list[Path]:
    v = m["verification"]
    return [plot_roc(v["far"], v["vr"], out_dir / "heldout_roc.png", title="Held-out identities: verification ROC")]


register_protocol(Protocol("heldout", "heldout", evaluate, _synthetic.summary, plots))
