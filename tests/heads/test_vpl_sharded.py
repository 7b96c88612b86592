"""The class-sharded VPL head equals the replicated one, memory included.

1 and 2 gloo CPU processes (one spawn per world size, every case in it) each hold a shard of the
classifier and of the memory and part of a global batch (uneven parts) and run three training
steps (start 1, delta 1: nothing live at step 1, the previous step's classes after; the rows are
not moved). Unsampled: loss, gradients (features, rows), the memory, its stamps and the iteration
after each step (``head_state``: gathered in class order) and the epoch report equal the
replicated head's on the whole batch; sampled (Partial FC, ``sample_rate`` 0.5): those of the
naive float64 reference over the kept classes. ``head_state`` / ``load_head_state`` carry the
memory for any world size (the 2-rank state loads into the replicated head). The replicated head
under a 2-rank group writes every rank's samples (all-gathered), so its replicas agree with the
one-process memory. Tolerances: float64 1e-10, float32 against float64 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from tests.heads import naive_tail_heads as naive
from tests.heads.gloo import gloo_group, run_worlds

from tailface.data.label_space import ClassStats
from tailface.heads.base import create_head, create_sharded_head
from tailface.heads.sharded import gather_full_rows, load_full_weight
from tailface.train.sharded import head_state, load_head_state

D, B, C, STEPS = 5, 13, 11, 3
STATS = ClassStats(np.array([30, 1, 2, 25, 5, 3, 12, 1, 9, 22, 4]))
KW = {"start_iter": 1, "delta": 1, "lam": 0.3, "s": 8.0, "m": 0.4}
F64 = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-5, atol=1e-5)
CASES = {"f64": (1.0, torch.float64), "f32": (1.0, torch.float32), "sampled": (0.5, torch.float64)}
STATE_KEYS = ["counted_epoch", "counted_steps", "iteration", "live_steps", "memory", "memory_step", "weight"]


def data(step):
    g = torch.Generator().manual_seed(11)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    xs = [torch.randn(B, D, generator=g, dtype=torch.float64) * 3 for _ in range(STEPS)]
    ys = [torch.randint(0, 6, (B,), generator=g) if s == 0 else torch.randint(0, C, (B,), generator=g)
          for s in range(STEPS)]
    return xs[step], w, ys[step]


def _rank(rank, world, init_file, out_file):
    with gloo_group(rank, world, init_file):
        part = torch.from_numpy(np.array_split(np.arange(B), world)[rank])
        results = {}
        for name, (rate, dtype) in CASES.items():
            _, w, _ = data(0)
            head = create_sharded_head("vpl", D, C, sample_rate=rate, seed=3, class_stats=STATS, **KW).to(dtype)
            load_full_weight(head, w)
            head.set_epoch(0)
            steps = []
            for step in range(STEPS):
                x, _, y = data(step)
                head.weight.grad = None
                xl = x[part].to(dtype).requires_grad_(True)
                out = head(xl, y[part], step=5 + step)
                out.loss.backward()
                grad_w = gather_full_rows(head, head.weight.grad, dst=0)
                objs = [None] * world
                dist.all_gather_object(objs, (xl.grad.double().numpy(), head.last_kept_classes))
                state = head_state(head, dst=0)
                steps.append(dict(loss=out.loss.detach().double(), grad_w=None if grad_w is None else grad_w.double(),
                                  grad_x=torch.from_numpy(np.concatenate([o[0] for o in objs])),
                                  kept=np.sort(np.concatenate([o[1] for o in objs])), state=state))
            report = head.epoch_report()
            # the trainer's checkpoint of the sharded head, loaded into a fresh one on every rank
            state = [head_state(head, dst=0)]
            dist.broadcast_object_list(state, src=0)
            fresh = create_sharded_head("vpl", D, C, sample_rate=rate, seed=9, class_stats=STATS, **KW).to(dtype)
            load_head_state(fresh, state[0], None)
            for key, value in head.state_dict().items():
                assert torch.equal(fresh.state_dict()[key], value), (name, key)
            if rank == 0:
                results[name] = dict(steps=steps, report=report, final=state[0])
        # the replicated head in the group: each rank its own part of the batch, the memory from all
        head = create_head("vpl", D, C, class_stats=STATS, **KW).double()
        with torch.no_grad():
            head.weight.copy_(data(0)[1])
        head.set_epoch(0)
        for step in range(STEPS):
            x, _, y = data(step)
            head(x[part], y[part])
        memories = [None] * world
        dist.all_gather_object(memories, {k: v.clone() for k, v in head.state_dict().items() if k != "weight"})
        if rank == 0:
            results["replicated_in_group"] = memories
            torch.save(results, out_file)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_worlds(_rank, (1, 2), tmp_path_factory.mktemp("vpl_sharded"))


def replicated():
    """Per step: (loss, grad features, grad rows, state_dict) of the replicated head, float64; and
    its epoch report."""
    _, w, _ = data(0)
    head = create_head("vpl", D, C, class_stats=STATS, **KW).double()
    with torch.no_grad():
        head.weight.copy_(w)
    head.set_epoch(0)
    steps = []
    for step in range(STEPS):
        x, _, y = data(step)
        head.weight.grad = None
        x = x.clone().requires_grad_(True)
        out = head(x, y)
        out.loss.backward()
        steps.append((out.loss.detach(), x.grad, head.weight.grad.clone(),
                      {k: v.clone() for k, v in head.state_dict().items()}))
    return steps, head.epoch_report()


def naive_kept(kept_per_step):
    """Per step: (loss, grad features, grad rows, memory, stamps) of the naive reference over the kept classes."""
    memory, stamps = torch.zeros(C, D, dtype=torch.float64), [0] * C
    out = []
    for step, kept in enumerate(kept_per_step):
        x, w, y = data(step)
        x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        live = naive.vpl_live(step + 1, stamps, KW["start_iter"], KW["delta"])
        loss = naive.vpl_loss(x, w, y, memory, live, KW["lam"], KW["s"], KW["m"], kept=kept)
        loss.backward()
        memory, stamps = naive.vpl_write(memory, stamps, x, y, step + 1)
        out.append((loss.detach(), x.grad, w.grad, memory, stamps))
    return out


@pytest.mark.parametrize("world", [1, 2])
def test_sharded_equals_replicated(runs, world):
    want, want_report = replicated()
    for name, (rate, dtype) in CASES.items():
        got = runs[world][name]
        tol = F64 if dtype == torch.float64 else F32
        if rate < 1.0:
            kept = [step["kept"] for step in got["steps"]]
            assert all(len(k) < C for k in kept), name
            for i, (step, (loss, gx, gw, memory, stamps)) in enumerate(zip(got["steps"], naive_kept(kept))):
                dropped = torch.from_numpy(np.setdiff1d(np.arange(C), step["kept"]))
                assert (step["grad_w"][dropped] == 0).all(), name
                for key, value in (("loss", loss), ("grad_x", gx), ("grad_w", gw)):
                    torch.testing.assert_close(step[key], value, **tol, msg=f"{name} world={world} step={i} {key}")
                assert step["state"]["memory_step"].tolist() == stamps
                torch.testing.assert_close(step["state"]["memory"], memory, **tol)
            continue
        for i, (step, (loss, gx, gw, state)) in enumerate(zip(got["steps"], want)):
            np.testing.assert_array_equal(step["kept"], np.arange(C))
            for key, value in (("loss", loss), ("grad_x", gx), ("grad_w", gw)):
                torch.testing.assert_close(step[key], value, **tol, msg=f"{name} world={world} step={i} {key}")
            assert sorted(step["state"]) == STATE_KEYS
            for key, value in state.items():
                if key == "memory":
                    torch.testing.assert_close(step["state"][key].double(), value, **tol, msg=f"{name} {i} {key}")
                elif key != "weight":
                    assert torch.equal(step["state"][key], value), (name, world, i, key)
        assert got["report"] == pytest.approx(want_report, rel=1e-12), name
    assert 0 < want_report["vpl/live_tail_mean"] < 1 and want[1][3]["memory_step"].max() == 2


def test_a_sharded_checkpoint_loads_into_the_replicated_head(runs):
    state = runs[2]["f64"]["final"]
    head = create_head("vpl", D, C, class_stats=STATS, **KW).double()
    head.load_state_dict(state)
    want = replicated()[0][-1][3]
    for key in ("memory", "memory_step", "iteration", "live_steps", "counted_steps"):
        torch.testing.assert_close(head.state_dict()[key], want[key], **F64)


def test_the_replicated_head_in_a_group_writes_every_ranks_samples(runs):
    want = replicated()[0][-1][3]
    for memories in (runs[1]["replicated_in_group"], runs[2]["replicated_in_group"]):
        for state in memories:  # every rank holds the one-process memory
            assert set(state) == set(want) - {"weight"}
            for key, value in state.items():
                torch.testing.assert_close(value, want[key], **F64, msg=key)
