"""Protocol ``lfw``: the LFW 6,000-pair 10-fold verification (tailface.eval.lfw_pairs)."""

from __future__ import annotations

from pathlib import Path

from tailface.eval.lfw_pairs import evaluate_lfw_pairs, read_pairs
from tailface.eval.plots import plot_roc
from tailface.eval.protocols.registry import EvalOptions, Features, Protocol, register_protocol
from tailface.paths import faces_root


def evaluate(features: Features, options: EvalOptions) -> dict:
    root = Path(options.faces_root) if options.faces_root is not None else faces_root()
    return evaluate_lfw_pairs(features.features, features.image_ids, read_pairs(root / "lfw" / "pairs.txt"),
                              source=features.source)


def summary(m: dict) -> list[tuple[str, str]]:
    rows = [("10-fold accuracy", f"{100 * m['accuracy_mean']:.2f} +- {100 * m['accuracy_std']:.2f}")]
    rows += [(f"TAR@FAR={float(far) * 100:g}%", f"{100 * v:.2f}") for far, v in m["tar_at_far"].items()]
    return rows


def plots(m: dict, out_dir: Path) -> list[Path]:
    roc = m["roc"]
    return [plot_roc(roc["far"], roc["tar"], out_dir / "lfw_roc.png", title="LFW pairs ROC")]


register_protocol(Protocol("lfw", "lfw", evaluate, summary, plots))
