"""Kill and resume a VPL baseline (``tailface train``, class-aware sampler): SIGKILLed mid-epoch
(before and after the first epoch's report) and while writing ``last.pt``, resumed with the same
command each time, it ends with the same weights, memory, stamps and iteration counter, tensor
for tensor, and the same per-epoch report (``epochs.csv``) as an uninterrupted run."""

from __future__ import annotations

from ._helpers import TINY_DATA, TINY_MODEL, TINY_TRAIN, assert_same_weights
from .test_kill_resume import _killed_and_resumed, _reference

TINY_VPL = {"name": "tiny-vpl", "data": TINY_DATA, "model": TINY_MODEL,
            "head": {"name": "vpl", "start_iter": 2, "delta": 3, "s": 8.0},
            "train": {**{k: v for k, v in TINY_TRAIN.items() if k != "max_steps"}, "epochs": 2,
                      "sampler": {"name": "class_aware", "strength": 1.0, "num_samples": 96}}}
KILLS = [
    "step.train:3",            # epoch 0, mid-epoch (last.pt holds step 2)
    "step.train:5",            # epoch 1, step 8: after epoch 0's report
    "tmp-written.last.pt:2",   # last.pt (step 10) written to its temporary file, not renamed
]


def test_vpl_killed_mid_epoch_and_mid_checkpoint_resumes_bit_identical(tmp_path):
    reference = tmp_path / "reference"
    _reference(TINY_VPL, reference)
    out, log = _killed_and_resumed(tmp_path, TINY_VPL, "train", KILLS)
    assert_same_weights(reference / "train" / "final.pt", out / "train" / "final.pt")
    report = (reference / "train" / "epochs.csv").read_text()
    assert report == (out / "train" / "epochs.csv").read_text()
    assert len(report.splitlines()) == 1 + 2 * 3 and "vpl/live_tail_mean" in report
    assert "epoch 0: vpl/live_tail_mean" in log or "epoch 1: vpl/live_tail_mean" in log

