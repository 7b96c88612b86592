"""Shallow: at most ``max_images`` images per identity.

Every identity with more than ``max_images`` images keeps ``max_images`` of them, drawn from the
shallow stream (``default_rng([seed, SHALLOW_STREAM])``): for each such class in ascending label
order, ``permutation(its images)[:max_images]``; the others leave training.
"""

from __future__ import annotations

import numpy as np

from tailface.data.perturb.labelling import Labelling
from tailface.errors import ConfigError

SHALLOW_STREAM = 2204


def shallow_rng(seed: int) -> np.random.Generator:
    """The generator of the images kept: ``default_rng([seed, 2204])``."""
    return np.random.default_rng([int(seed), SHALLOW_STREAM])


def check_shallow(max_images: int) -> None:
    if int(max_images) != max_images or max_images < 1:
        raise ConfigError(f"--shallow: at most MAX images per identity needs MAX >= 1, got {max_images}")


def shallow(lab: Labelling, max_images: int, seed: int) -> tuple[Labelling, dict]:
    """At most ``max_images`` images per identity: the new Labelling and the manifest section
    ``{"max", "dropped": [{"identity", "images": [ids]}]}``."""
    check_shallow(max_images)
    rng = shallow_rng(seed)
    keep = np.ones(len(lab), dtype=bool)
    dropped = []
    for cls in np.flatnonzero(lab.counts() > max_images):
        gone = np.sort(rng.permutation(lab.members(int(cls)))[int(max_images):])
        keep[gone] = False
        dropped.append({"identity": lab.names[cls], "images": lab.ids(gone)})
    section = {"max": int(max_images), "dropped": dropped}
    return Labelling.make(lab.images[keep], lab.labels[keep], lab.names, lab.source_ids), section
