"""Under DDP the centre update uses the global batch: two gloo ranks with half a batch each end
with the centres of one process that saw the whole batch."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tailface.heads import create_head


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 1, 2, 0, 1, 2, 2])


def _rank(rank, world, init_file, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        head = create_head("center_loss", 4, 3, alpha=0.5).double()
        x, y = _batch()
        part = slice(rank * 4, (rank + 1) * 4)
        head(x[part], y[part])
        if rank == 0:
            torch.save(head.centers, out_file)
    finally:
        dist.destroy_process_group()


def test_centre_update_is_global_under_ddp(tmp_path):
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tmp_path / "centers.pt")), nprocs=2)
    torch.manual_seed(0)
    single = create_head("center_loss", 4, 3, alpha=0.5).double()
    single(*_batch())
    local = create_head("center_loss", 4, 3, alpha=0.5).double()
    x, y = _batch()
    local(x[:4], y[:4])
    ddp = torch.load(tmp_path / "centers.pt")
    torch.testing.assert_close(ddp, single.centers, rtol=0, atol=1e-14)
    assert not torch.allclose(local.centers, single.centers)  # the rank-0 half alone differs
