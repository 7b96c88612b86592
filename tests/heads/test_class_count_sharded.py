"""The class-sharded logit-adjusted and LDAM heads equal the replicated ones.

1, 2 and 3 gloo CPU processes (one spawn per world size, every case in it) each hold a shard of
the classifier and part of a global batch (uneven parts). Unsampled, loss and gradients
(features, rows) must equal those of the replicated head on the whole batch; sampled (Partial FC,
``sample_rate`` 0.4: the offsets of the kept columns only), those of the naive float64 reference
restricted to the kept classes (``naive_class_count.py``). LDAM runs before and after
``drw_epoch`` (the weighted mean over the global batch). Tolerances: float64 1e-10, float32
against float64 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from tests.heads import naive_class_count as naive
from tests.heads.gloo import gloo_group, run_worlds

from tailface.data.label_space import ClassStats
from tailface.heads.base import create_head, create_sharded_head
from tailface.heads.sharded import gather_full_rows, load_full_weight

D, B = 5, 13
COUNTS = [1, 2, 3, 7, 40, 5, 1, 12, 9, 2, 30]
C = len(COUNTS)
DRW = 2
F64 = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-5, atol=1e-5)
CASES = {  # name: (head, kwargs, epoch, sample_rate, dtype)
    "la": ("logit_adjusted", {}, 0, 1.0, torch.float64),
    "la_tau2_cosface": ("logit_adjusted", {"tau": 2.0, "margin": "cosface", "s": 8.0, "m": 0.3}, 0, 1.0,
                        torch.float64),
    "la_arcface": ("logit_adjusted", {"margin": "arcface", "s": 8.0, "m": 0.5}, 0, 1.0, torch.float64),
    "la_arcface_f32": ("logit_adjusted", {"margin": "arcface", "s": 8.0, "m": 0.5}, 0, 1.0, torch.float32),
    "la_sampled": ("logit_adjusted", {"tau": 1.5}, 0, 0.4, torch.float64),
    "ldam": ("ldam", {"s": 16.0, "drw_epoch": DRW}, DRW - 1, 1.0, torch.float64),
    "ldam_drw": ("ldam", {"s": 16.0, "drw_epoch": DRW, "beta": 0.9}, DRW, 1.0, torch.float64),
    "ldam_drw_f32": ("ldam", {"s": 16.0, "drw_epoch": DRW}, DRW, 1.0, torch.float32),
    "ldam_drw_sampled": ("ldam", {"s": 16.0, "drw_epoch": DRW, "beta": 0.9}, DRW, 0.4, torch.float64),
}


def data(name):
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B,), generator=g)
    return x, w, y


def stats():
    return ClassStats(np.array(COUNTS))


def _rank(rank, world, init_file, out_file):
    with gloo_group(rank, world, init_file):
        part = torch.from_numpy(np.array_split(np.arange(B), world)[rank])
        results = {}
        for name, (head_name, kwargs, epoch, rate, dtype) in CASES.items():
            x, w, y = data(name)
            head = create_sharded_head(head_name, D, C, sample_rate=rate, seed=3, class_stats=stats(),
                                       **kwargs).to(dtype)
            load_full_weight(head, w)
            if hasattr(head, "set_epoch"):
                head.set_epoch(epoch)
            xl = x[part].to(dtype).requires_grad_(True)
            out = head(xl, y[part], step=5)
            out.loss.backward()
            grad_w = gather_full_rows(head, head.weight.grad, dst=0)
            objs = [None] * world
            dist.all_gather_object(objs, (xl.grad.double().numpy(), head.last_kept_classes))
            if rank == 0:
                results[name] = dict(loss=out.loss.detach().double(), grad_w=grad_w.double(),
                                     grad_x=torch.from_numpy(np.concatenate([o[0] for o in objs])),
                                     kept=np.sort(np.concatenate([o[1] for o in objs])))
        if rank == 0:
            torch.save(results, out_file)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_worlds(_rank, (1, 2, 3), tmp_path_factory.mktemp("class_count_sharded"))


def replicated(name):
    """(loss, grad features, grad rows) of the replicated head on the whole batch, float64."""
    head_name, kwargs, epoch, _, _ = CASES[name]
    x, w, y = data(name)
    head = create_head(head_name, D, C, class_stats=stats(), **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(w)
    if hasattr(head, "set_epoch"):
        head.set_epoch(epoch)
    x = x.clone().requires_grad_(True)
    out = head(x, y)
    out.loss.backward()
    return out.loss.detach(), x.grad, head.weight.grad


def naive_kept(name, kept):
    head_name, kwargs, epoch, _, _ = CASES[name]
    x, w, y = data(name)
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    if head_name == "logit_adjusted":
        loss = naive.logit_adjusted_loss(x, w, y, COUNTS, kwargs.get("tau", 1.0), kwargs.get("margin", "softmax"),
                                         kwargs.get("s", 1.0), kwargs.get("m", 0.0), kept=kept)
    else:
        beta = kwargs.get("beta", 0.9999) if epoch >= kwargs["drw_epoch"] else None
        loss = naive.ldam_loss(x, w, y, COUNTS, kwargs["s"], kwargs.get("max_m", 0.5), beta, kept=kept)
    loss.backward()
    return loss.detach(), x.grad, w.grad


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sharded_equals_replicated(runs, world):
    for name, (_, _, _, rate, dtype) in CASES.items():
        got = runs[world][name]
        if rate < 1.0:
            assert len(got["kept"]) < C, name
            expected = naive_kept(name, got["kept"])
            dropped = torch.from_numpy(np.setdiff1d(np.arange(C), got["kept"]))
            assert (got["grad_w"][dropped] == 0).all(), name
        else:
            np.testing.assert_array_equal(got["kept"], np.arange(C))
            expected = replicated(name)
        tol = F64 if dtype == torch.float64 else F32
        for key, value in zip(("loss", "grad_x", "grad_w"), expected):
            torch.testing.assert_close(got[key], value, **tol, msg=f"{name} world={world} {key}")


def test_replicated_references_are_the_naive_losses():
    """(The unsampled comparison above is against the replicated head; tie it to the papers'
    equations here, case by case.)"""
    for name in ("la", "la_tau2_cosface", "ldam", "ldam_drw"):
        for got, want in zip(replicated(name), naive_kept(name, None)):
            torch.testing.assert_close(got, want, **F64)
