"""Protocol ``blufr``: BLUFR on LFW with the official configuration (tailface.eval.blufr)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailface.eval.blufr import evaluate_blufr, load_blufr_config
from tailface.eval.plots import plot_cmc, plot_dir, plot_roc
from tailface.eval.protocols.registry import EvalOptions, Features, Protocol, register_protocol
from tailface.paths import faces_root


def evaluate(features: Features, options: EvalOptions) -> dict:
    root = Path(options.faces_root) if options.faces_root is not None else faces_root()
    config = load_blufr_config(root / "blufr" / "blufr_lfw_config.mat")
    return evaluate_blufr(features.features, config, image_ids=features.image_ids, source=features.source)


def summary(m: dict) -> list[tuple[str, str]]:
    rows = []
    for key, name in (("vr_far_0.1%", "VR@FAR=0.1%"), ("dir_far_1%_rank1", "DIR@FAR=1%,rank1")):
        s = m["report"][key]
        rows.append((name, f"{100 * s['mean']:.2f} +- {100 * s['std']:.2f} (mean-std {100 * s['mean_minus_std']:.2f})"))
    return rows


def plots(m: dict, out_dir: Path) -> list[Path]:
    v, o = m["verification_curve"], m["openset_curve"]
    rank1 = np.asarray(o["mean"])[o["rank"].index(1)]
    fi = int(np.argmin(np.abs(np.asarray(o["far"]) - 1e-2)))
    return [plot_roc(v["far"], v["mean"], out_dir / "blufr_roc.png",
                       title="BLUFR verification ROC (mean of 10 trials)"),
            plot_dir(o["far"], rank1, out_dir / "blufr_dir.png"),
            plot_cmc(o["rank"], np.asarray(o["mean"])[:, fi], out_dir / "blufr_cmc.png",
                       title="BLUFR open-set CMC at FAR = 1%")]


register_protocol(Protocol("blufr", "lfw", evaluate, summary, plots))
