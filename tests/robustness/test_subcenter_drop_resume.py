"""Kill and resume the sub-center drop kind (``tailface run``): SIGKILLed in the first training
stage, during the drop's feature extraction, at the start of the drop, while writing its last
file (``kept.npy``) and in the retraining, resumed with the same command each time, it ends with
the same models, drop list and kept images as an uninterrupted run."""

from __future__ import annotations

import numpy as np

from ._helpers import TINY_DATA, TINY_MODEL, TINY_TRAIN, assert_same_weights
from .test_kill_resume import _killed_and_resumed, _reference

TINY_DROP = {"name": "tiny-drop", "data": TINY_DATA, "model": TINY_MODEL,
             "head": {"name": "subcenter_arcface", "k": 3, "s": 8.0, "m": 0.2}, "drop": {"angle": 85},
             "train": TINY_TRAIN}
KILLS = [
    "step.train:2",            # first stage, mid-epoch
    "features:1",              # the drop's feature extraction
    "stage.drop:1",            # the drop, before it writes anything
    "tmp-written.kept.npy:1",  # the drop's last file written to its temporary file, not renamed
    "step.retrain:2",          # the retraining, mid-epoch
]


def test_subcenter_drop_killed_at_every_stage_resumes_bit_identical(tmp_path):
    reference = tmp_path / "reference"
    _reference(TINY_DROP, reference)
    out, log = _killed_and_resumed(tmp_path, TINY_DROP, "run", KILLS)
    for stage in ("train", "retrain"):
        assert_same_weights(reference / stage / "final.pt", out / stage / "final.pt")
    np.testing.assert_array_equal(np.load(reference / "drop" / "kept.npy"), np.load(out / "drop" / "kept.npy"))
    for name in ("dropped.csv", "summary.json"):
        assert (reference / "drop" / name).read_text() == (out / "drop" / name).read_text(), name
    assert 0 < len(np.load(out / "drop" / "kept.npy")) and "train: done" in log
