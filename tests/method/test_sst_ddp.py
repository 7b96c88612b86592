"""Semi-Siamese Training under DDP: two gloo CPU processes with one batch-norm group each train
the same model as one process with two (``sst.bn_splits`` 2): the same groups for the probe and,
through the gathered and permuted global batch (shuffle-BN), for the gallery; the gallery
features of both ranks in one queue. Three steps of the trainer (``fit``) on a tiny set with
one-image identities, a queue that wraps; compared: the probe's and the gallery's parameters, the
queue, its labels and pointer (float32, 1e-5). Batch-norm running statistics are not compared:
they never enter training (every forward normalises with batch statistics), and under DDP they
are rank 0's."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tailface.data.faceset import InMemoryFaceSet
from tailface.experiment.sst import pair_sampler
from tailface.method.sst import SemiSiamese
from tailface.train.checkpoint import build_model
from tailface.train.config import TrainConfig
from tailface.train.trainer import fit

BATCH, QUEUE, STEPS = 8, 6, 3


def _faceset() -> InMemoryFaceSet:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), [1, 1, 2, 3, 1, 4])  # three one-image identities
    return InMemoryFaceSet(rng.integers(0, 256, size=(len(labels), 8, 8, 3), dtype=np.uint8), labels)


def _train(out: str, bn_splits: int) -> None:
    torch.manual_seed(0)
    probe = build_model("small", input_size=8, embedding_size=8, width=4)
    objective = SemiSiamese(probe, 8, momentum=0.9, queue_size=QUEUE, bn_splits=bn_splits, seed=5)
    cfg = TrainConfig(epochs=STEPS, batch_size=BATCH, max_steps=STEPS, sampler=pair_sampler(BATCH), progress=False,
                      device="cpu", warmup_epochs=0.0)
    fit(probe, objective, _faceset(), cfg, out)  # one step an epoch (12 images)


def _rank(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        _train(out, bn_splits=1)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _compared(path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, weights_only=True)
    tensors = {**{"model." + k: v for k, v in ckpt["model"].items()},
               **{"head." + k: v for k, v in ckpt["head"].items()}}
    return {k: v for k, v in tensors.items() if "running_" not in k and "num_batches_tracked" not in k}


def test_two_ranks_equal_one_rank_with_two_bn_groups(tmp_path):
    torch.set_num_threads(1)
    _train(str(tmp_path / "one"), bn_splits=2)
    ctx = mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tmp_path / "two")), nprocs=2, join=False)
    while not ctx.join():
        pass
    one, two = _compared(tmp_path / "one" / "final.pt"), _compared(tmp_path / "two" / "final.pt")
    assert one.keys() == two.keys()
    assert int(one["head.steps"]) == STEPS and int(one["head.queue_ptr"]) == STEPS * BATCH // 2 % QUEUE
    assert torch.equal(one["head.queue_labels"], two["head.queue_labels"])
    assert (one["head.queue_labels"] >= 0).all()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-5, msg=key)
