"""The class-sharded sub-center ArcFace and AdaFace heads equal the replicated ones.

1, 2 and 3 gloo CPU processes (one spawn per world size, every case in it) each hold a shard of
the classifier and part of a global batch (uneven parts) and run two training steps (forward and
backward; the rows are not moved). Unsampled, loss and gradients (features, rows) of each step
and AdaFace's running statistics after it must equal those of the replicated head on the whole
batch; sampled (Partial FC, ``sample_rate`` 0.4), those of the naive float64 reference restricted
to the kept classes (``naive_tail_heads.py``; AdaFace's statistics over the whole global batch).
The running statistics are bit-identical on every rank, and ``head_state`` / ``load_head_state``
(the trainer's checkpoint of a sharded head) carry them. Tolerances: float64 1e-10, float32
against float64 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from tests.heads import naive_tail_heads as naive
from tests.heads.gloo import gloo_group, run_worlds

from tailface.heads.base import create_head, create_sharded_head
from tailface.heads.sharded import gather_full_rows, load_full_weight
from tailface.train.sharded import head_state, load_head_state

D, B, C = 5, 13, 11
F64 = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-5, atol=1e-5)
START = (2.0, 1.5)  # AdaFace's running (mean, std) before the first step
CASES = {  # name: (head, kwargs, sample_rate, dtype)
    "sub": ("subcenter_arcface", {"s": 8.0}, 1.0, torch.float64),
    "sub_k2_cosface": ("subcenter_arcface", {"k": 2, "margin": "cosface", "s": 8.0, "m": 0.3}, 1.0, torch.float64),
    "sub_f32": ("subcenter_arcface", {"s": 8.0}, 1.0, torch.float32),
    "sub_sampled": ("subcenter_arcface", {"s": 8.0, "m": 0.4}, 0.4, torch.float64),
    "ada": ("adaface", {"s": 8.0, "h": 1.0, "momentum": 0.3}, 1.0, torch.float64),
    "ada_defaults": ("adaface", {}, 1.0, torch.float64),
    "ada_f32": ("adaface", {"s": 8.0, "momentum": 0.3}, 1.0, torch.float32),
    "ada_sampled": ("adaface", {"s": 8.0, "h": 1.0, "momentum": 0.3}, 0.4, torch.float64),
}


def data(name, step):
    head_name, kwargs = CASES[name][:2]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    shape = (C, kwargs.get("k", 3), D) if head_name == "subcenter_arcface" else (C, D)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    xs = [torch.randn(B, D, generator=g, dtype=torch.float64) * torch.rand(B, 1, generator=g, dtype=torch.float64)
          * 5 for _ in range(2)]
    y = torch.randint(0, C, (B,), generator=g)
    return xs[step], w, y


def _start(head):
    if hasattr(head, "running_mean"):
        with torch.no_grad():
            head.running_mean.fill_(START[0])
            head.running_std.fill_(START[1])


def _stats(head):
    return torch.stack([head.running_mean, head.running_std]).double() if hasattr(head, "running_mean") else None


def _rank(rank, world, init_file, out_file):
    with gloo_group(rank, world, init_file):
        part = torch.from_numpy(np.array_split(np.arange(B), world)[rank])
        results = {}
        for name, (head_name, kwargs, rate, dtype) in CASES.items():
            _, w, _ = data(name, 0)
            head = create_sharded_head(head_name, D, C, sample_rate=rate, seed=3, **kwargs).to(dtype)
            load_full_weight(head, w)
            _start(head)
            steps = []
            for step in range(2):
                x, _, y = data(name, step)
                head.weight.grad = None
                xl = x[part].to(dtype).requires_grad_(True)
                out = head(xl, y[part], step=5 + step)
                out.loss.backward()
                grad_w = gather_full_rows(head, head.weight.grad, dst=0)
                objs = [None] * world
                dist.all_gather_object(objs, (xl.grad.double().numpy(), head.last_kept_classes, _stats(head)))
                stats = [o[2] for o in objs]
                if stats[0] is not None:  # the same statistics on every rank, bit for bit
                    assert all(torch.equal(s, stats[0]) for s in stats), name
                steps.append(dict(loss=out.loss.detach().double(), grad_w=None if grad_w is None else grad_w.double(),
                                  grad_x=torch.from_numpy(np.concatenate([o[0] for o in objs])),
                                  kept=np.sort(np.concatenate([o[1] for o in objs])), stats=stats[0]))
            # the trainer's checkpoint of the sharded head, loaded into a fresh one on every rank
            state = [head_state(head, dst=0)]
            dist.broadcast_object_list(state, src=0)
            fresh = create_sharded_head(head_name, D, C, sample_rate=rate, seed=9, **kwargs).to(dtype)
            load_head_state(fresh, state[0], None)
            assert torch.equal(fresh.weight, head.weight), name
            for key, value in head.state_dict().items():
                assert torch.equal(fresh.state_dict()[key], value), (name, key)
            if rank == 0:
                results[name] = dict(steps=steps, state_keys=sorted(state[0]))
        if rank == 0:
            torch.save(results, out_file)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_worlds(_rank, (1, 2, 3), tmp_path_factory.mktemp("tail_heads_sharded"))


def replicated(name):
    """Per step: (loss, grad features, grad rows, running statistics) of the replicated head on the
    whole batch, float64."""
    head_name, kwargs, _, _ = CASES[name]
    _, w, _ = data(name, 0)
    head = create_head(head_name, D, C, **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(w)
    _start(head)
    steps = []
    for step in range(2):
        x, _, y = data(name, step)
        head.weight.grad = None
        x = x.clone().requires_grad_(True)
        out = head(x, y)
        out.loss.backward()
        steps.append((out.loss.detach(), x.grad, head.weight.grad.clone(), _stats(head)))
    return steps


def naive_kept(name, kept_per_step):
    """Per step: (loss, grad features, grad rows, running statistics) of the naive reference over
    the kept classes of that step."""
    head_name, kwargs, _, _ = CASES[name]
    mean, std = START
    steps = []
    for step, kept in enumerate(kept_per_step):
        x, w, y = data(name, step)
        x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        stats = None
        if head_name == "subcenter_arcface":
            loss = naive.subcenter_loss(x, w, y, kwargs.get("margin", "arcface"), kwargs["s"], kwargs.get("m", 0.5),
                                        kept=kept)
        else:
            mean, std = naive.norm_statistics(x.detach(), mean, std, kwargs.get("momentum", 0.01))
            loss = naive.adaface_loss(x, w, y, mean, std, kwargs.get("m", 0.4), kwargs.get("h", 0.333),
                                      kwargs.get("s", 64.0), kept=kept)
            stats = torch.tensor([mean, std], dtype=torch.float64)
        loss.backward()
        steps.append((loss.detach(), x.grad, w.grad, stats))
    return steps


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sharded_equals_replicated(runs, world):
    for name, (head_name, _, rate, dtype) in CASES.items():
        got = runs[world][name]
        expected_keys = ["running_mean", "running_std", "weight"] if head_name == "adaface" else ["weight"]
        assert got["state_keys"] == expected_keys, name
        if rate < 1.0:
            for step in got["steps"]:
                assert len(step["kept"]) < C, name
                dropped = torch.from_numpy(np.setdiff1d(np.arange(C), step["kept"]))
                assert (step["grad_w"][dropped] == 0).all(), name
            expected = naive_kept(name, [step["kept"] for step in got["steps"]])
        else:
            for step in got["steps"]:
                np.testing.assert_array_equal(step["kept"], np.arange(C))
            expected = replicated(name)
        tol = F64 if dtype == torch.float64 else F32
        for i, (step, want) in enumerate(zip(got["steps"], expected)):
            for key, value in zip(("loss", "grad_x", "grad_w", "stats"), want):
                if value is None:
                    assert step[key] is None, (name, key)
                    continue
                torch.testing.assert_close(step[key], value, **tol, msg=f"{name} world={world} step={i} {key}")


def test_replicated_references_are_the_naive_losses():
    """(The unsampled comparison above is against the replicated head; tie it to the naive
    equations here, case by case.)"""
    for name in ("sub", "sub_k2_cosface", "ada", "ada_defaults"):
        for got, want in zip(replicated(name), naive_kept(name, [None, None])):
            for a, b in zip(got, want):
                if b is None:
                    assert a is None
                else:
                    torch.testing.assert_close(a, b, **F64)
