"""Protocol ``megaface-proxy``: MegaFace-style identification on LFW
(:func:`tailface.eval.megaface.lfw_proxy_split`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailface.errors import ProtocolError
from tailface.eval.megaface import PROXY_MIN_IMAGES, lfw_proxy_split, megaface_identification
from tailface.eval.plots import plot_cmc
from tailface.eval.protocols.registry import EvalOptions, Features, Protocol, register_protocol


def identity_of(image_id: str) -> str:
    """LFW identity from an image id (``Name/Name_0001.jpg`` or ``Name_0001.jpg``)."""
    return str(image_id).replace("\\", "/").rsplit("/", 1)[-1].rsplit("_", 1)[0]


def evaluate(features: Features, options: EvalOptions) -> dict:
    if features.image_ids is None:
        raise ProtocolError(f"{features.source}: image ids are needed for the MegaFace proxy")
    # the result depends only on which feature belongs to which image, never on the file's row
    # order: rows are put in image-id order before the split and the seeded distractor draw
    ids = np.asarray([str(i) for i in features.image_ids])
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    duplicated = ids[1:][ids[1:] == ids[:-1]]
    if len(duplicated):
        raise ProtocolError(f"{features.source}: {len(duplicated)} duplicate image ids (e.g. {duplicated[0]})")
    labels = np.unique([identity_of(i) for i in ids], return_inverse=True)[1]
    probe, distractor = lfw_proxy_split(labels)
    x = np.asarray(features.features)[order]
    res = megaface_identification(x[probe], labels[probe], x[distractor], source=features.source)
    res.update(protocol="megaface-proxy", probe_min_images=PROXY_MIN_IMAGES,
               n_probe_identities=int(len(np.unique(labels[probe]))), n_distractors_available=int(len(distractor)))
    return res


def summary(m: dict) -> list[tuple[str, str]]:
    return [(f"rank-1 @ {n} distractors", f"{100 * r:.2f}") for n, r in zip(m["distractor_counts"], m["rank1"])]


def plots(m: dict, out_dir: Path) -> list[Path]:
    return [plot_cmc(list(range(1, 11)), m["cmc"], out_dir / "megaface_proxy_cmc.png", title="MegaFace proxy CMC",
                       labels=[f"{n} distractors" for n in m["distractor_counts"]])]


register_protocol(Protocol("megaface-proxy", "lfw", evaluate, summary, plots))
