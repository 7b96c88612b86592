"""The harness of the gloo tests of sharded heads: a worker runs on 1..N CPU ranks of one process
group, and rank 0's results come back to the test (one file per world size)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


@contextmanager
def gloo_group(rank: int, world: int, init_file: str) -> Iterator[None]:
    """Rank ``rank`` of a ``world``-rank gloo group (one torch thread) for the body; the ranks leave
    together: a peer closing its connections early can abort gloo."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_worlds(worker: Callable[[int, int, str, str], None], worlds: Iterable[int], root: Path) -> dict[int, Any]:
    """``{world: what rank 0 saved}``: ``worker(rank, world, init_file, out_file)`` spawned on each
    world size in turn; rank 0 saves its results to ``out_file`` (``torch.save``)."""
    out = {}
    for world in worlds:
        ctx = mp.spawn(worker, args=(world, str(root / f"init{world}"), str(root / f"world{world}.pt")),
                       nprocs=world, join=False)
        while not ctx.join():
            pass
        out[world] = torch.load(root / f"world{world}.pt", weights_only=False)
    return out
