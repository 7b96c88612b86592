"""Class-sharded heads (``tailface.heads.sharded``, ``sharded_dispersion``, ``shard_plan``).

1, 2 and 3 gloo CPU processes (one spawn per world size, every case in it) each hold a shard of
the classifier and part of a global batch (uneven parts); loss and gradients (features, rows)
are checked against float64 naive single-process references on the whole batch
(``tests/heads/naive.py``: one formula per sample, explicit loops), sampled runs against the
reference restricted to the rows they kept. The world-2 run saves a world-size-independent
checkpoint (full weight and SGD momentum) after two SGD steps, the world-3 run loads it and takes
a third step, compared with one process doing all three.

Tolerances: float64 runs rtol = atol = 1e-10 (loss and gradients); float32 runs (against the
float64 reference) rtol = atol = 1e-5.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tests.heads import naive

from tailface.heads.margin_head import MarginHead
from tailface.heads.margins import Margin
from tailface.heads.shard_plan import ShardPlan
from tailface.heads.sharded import (
    ShardedMarginHead,
    gather_full_rows,
    gather_full_weight,
    kept_count,
    load_full_weight,
    sample_units,
    shard_full_rows,
)
from tailface.heads.softmax import SoftmaxHead
from tailface.method.dispersion import DispersionHead
from tailface.method.sharded_dispersion import ShardedDispersionHead

D, B, C = 6, 13, 23
NUM_HEAD = 7
SUPER_OF_TAIL = np.array([0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 1, 2, 3, 1, 4, 5, 2, 3])  # 19 tail classes
STEP = 5
RATE = 0.4
F64 = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-5, atol=1e-5)

SPECS = {  # name: (family, head kwargs)
    "softmax": ("margin", dict(kind="softmax")),
    "cosface": ("margin", dict(kind="cosface", s=16.0, m=0.35)),
    "arcface": ("margin", dict(kind="arcface", s=16.0, m=0.5)),
    "disp_sample": ("dispersion", dict(margin=Margin(), mode="sample")),
    "disp_batch": ("dispersion", dict(margin=Margin(), mode="batch")),
    "disp_sample_arcface_renorm": ("dispersion", dict(margin=Margin("arcface", 16.0, 0.3), mode="sample",
                                                       renormalize_phi=True)),
    "disp_batch_cosface": ("dispersion", dict(margin=Margin("cosface", 16.0, 0.3), mode="batch")),
}
# (spec, sample_rate, dtype)
CASES = ([(name, 1.0, torch.float64) for name in SPECS] + [(name, RATE, torch.float64) for name in SPECS]
         + [("arcface", 1.0, torch.float32), ("disp_batch_cosface", 1.0, torch.float32),
            ("disp_sample", RATE, torch.float32)])


def case_key(spec, rate, dtype):
    return f"{spec}-{rate}-{str(dtype).split('.')[-1]}"


def data(spec):
    family = SPECS[spec][0]
    g = torch.Generator().manual_seed(sum(map(ord, spec)))
    num_classes = C if family == "margin" else NUM_HEAD + len(SUPER_OF_TAIL)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    w = torch.randn(num_classes, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, num_classes, (B,), generator=g)
    if family == "dispersion":
        y[:3] = torch.tensor([0, NUM_HEAD, NUM_HEAD + 6])  # head samples and tail samples, two in super 0
    return x, w, y


def make_head(spec, rate=1.0, group=None):
    family, kwargs = SPECS[spec]
    if family == "margin":
        return ShardedMarginHead(D, C, sample_rate=rate, seed=3, group=group, **kwargs)
    return ShardedDispersionHead(D, NUM_HEAD, SUPER_OF_TAIL, sample_rate=rate, seed=3, group=group, **kwargs)


def reference(spec, kept=None):
    """(loss, grad features, grad rows) of the naive float64 loss on the whole batch, over the
    classes ``kept`` (sorted global ids; None: all)."""
    family, kw = SPECS[spec]
    x, w, y = data(spec)
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    if family == "margin":
        kept = np.arange(C) if kept is None else np.asarray(kept)
        ws, ys = w[torch.from_numpy(kept)], torch.from_numpy(np.searchsorted(kept, y.numpy()))
        assert (torch.from_numpy(kept)[ys] == y).all()
        if kw["kind"] == "softmax":
            loss = naive.softmax_loss(x, ws, ys)
        else:
            loss = naive.margin_head_loss(x, ws, ys, kw["kind"], kw["s"], kw["m"])
    else:
        margin = kw["margin"]
        loss = naive.dispersion_loss(x, w, y, NUM_HEAD, SUPER_OF_TAIL, margin.kind, margin.scale,
                                     margin.value, kw["mode"], kw.get("renormalize_phi", False),
                                     kept=kept)
    loss.backward()
    return loss.detach(), x.grad, w.grad


def sgd_steps(head, x, y, steps, opt=None):
    opt = opt or torch.optim.SGD(head.parameters(), lr=0.5, momentum=0.9)
    for step in range(steps):
        opt.zero_grad()
        head(x, y, step=step).loss.backward()
        opt.step()
    return opt


# ------------------------------------------------------------------------------------------------
# worker: every case in one process group
def _rank(rank, world, init_file, out_file, ckpt_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        part = torch.from_numpy(np.array_split(np.arange(B), world)[rank])
        results = {}
        for spec, rate, dtype in CASES:
            x, w, y = data(spec)
            head = make_head(spec, rate).to(dtype)
            load_full_weight(head, w)
            xl = x[part].to(dtype).requires_grad_(True)
            out = head(xl, y[part], step=STEP)
            out.loss.backward()
            grad_w = gather_full_rows(head, head.weight.grad, dst=0)
            kept = head.last_kept_classes
            objs = [None] * world
            dist.all_gather_object(objs, (xl.grad.double().numpy(), kept, len(kept)))
            if rank == 0:
                results[case_key(spec, rate, dtype)] = dict(
                    loss=out.loss.detach().double(), grad_x=torch.from_numpy(np.concatenate([o[0] for o in objs])),
                    grad_w=grad_w.double(), kept=np.sort(np.concatenate([o[1] for o in objs])),
                    kept_per_rank=[o[2] for o in objs], targets=out.targets.clone())
            if rate == 1.0 and dtype == torch.float64:  # sample_rate 1: the unsampled head, bit for bit
                again = make_head(spec, 1.0).double()
                load_full_weight(again, w)
                again.eval()
                xl2 = x[part].clone().requires_grad_(True)
                out2 = again(xl2, y[part])
                out2.loss.backward()
                assert torch.equal(out2.loss, out.loss.detach())
                assert torch.equal(xl2.grad, xl.grad) and torch.equal(again.weight.grad, head.weight.grad)
        # checkpoints: world 2 saves after two SGD steps, world 3 resumes for a third
        x, w, y = data("arcface")
        head = make_head("arcface").double()
        if world == 2:
            load_full_weight(head, w)
            opt = sgd_steps(head, x[part], y[part], 2)
            full_w = gather_full_weight(head, dst=0)
            full_m = gather_full_rows(head, opt.state[head.weight]["momentum_buffer"], dst=0)
            if rank == 0:
                torch.save({"weight": full_w, "momentum": full_m}, ckpt_file)
        if world == 3:
            ckpt = torch.load(ckpt_file)
            load_full_weight(head, ckpt["weight"])
            opt = torch.optim.SGD(head.parameters(), lr=0.5, momentum=0.9)
            opt.state[head.weight]["momentum_buffer"] = shard_full_rows(head, ckpt["momentum"]).clone()
            round_trip = gather_full_weight(head), gather_full_rows(head, opt.state[head.weight]["momentum_buffer"])
            opt.zero_grad()
            head(x[part], y[part]).loss.backward()
            opt.step()
            resumed = gather_full_weight(head, dst=0)
            if rank == 0:
                results["checkpoint"] = dict(saved=ckpt, round_trip=round_trip, resumed=resumed)
        if rank == 0:
            torch.save(results, out_file)
        dist.barrier()  # leave together: a peer closing its connections early can abort gloo
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")

    def spawn(world):
        args = (world, str(root / f"init{world}"), str(root / f"world{world}.pt"), str(root / "ckpt.pt"))
        return mp.spawn(_rank, args=args, nprocs=world, join=False)

    first = [spawn(1), spawn(2)]  # world 3 loads the checkpoint world 2 writes
    for ctx in first:
        while not ctx.join():
            pass
    ctx = spawn(3)
    while not ctx.join():
        pass
    return {world: torch.load(root / f"world{world}.pt", weights_only=False) for world in (1, 2, 3)}


_REFERENCES: dict = {}


def cached_reference(spec, kept):
    key = (spec, None if kept is None else tuple(kept))
    if key not in _REFERENCES:
        _REFERENCES[key] = reference(spec, kept)
    return _REFERENCES[key]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_loss_and_gradients_match_single_process_reference(runs, world):
    for spec, rate, dtype in CASES:
        got = runs[world][case_key(spec, rate, dtype)]
        family = SPECS[spec][0]
        num_classes = C if family == "margin" else NUM_HEAD + len(SUPER_OF_TAIL)
        sampled = rate < 1.0
        if sampled:
            assert len(got["kept"]) < num_classes, spec
        else:
            np.testing.assert_array_equal(got["kept"], np.arange(num_classes))
        loss, grad_x, grad_w = cached_reference(spec, got["kept"] if sampled else None)
        tol = F64 if dtype == torch.float64 else F32
        msg = f"{spec} rate={rate} {dtype} world={world}"
        torch.testing.assert_close(got["loss"], loss, **tol, msg=msg)
        torch.testing.assert_close(got["grad_x"], grad_x, **tol, msg=msg)
        torch.testing.assert_close(got["grad_w"], grad_w, **tol, msg=msg)
        torch.testing.assert_close(got["targets"], data(spec)[2])
        if sampled:  # rows that were not kept get no gradient
            dropped = np.setdiff1d(np.arange(num_classes), got["kept"])
            assert (got["grad_w"][torch.from_numpy(dropped)] == 0).all(), msg


@pytest.mark.parametrize("world", [2, 3])
def test_sampling_keeps_positives_and_partial_fc_count(runs, world):
    for spec in ("softmax", "arcface"):
        got = runs[world][case_key(spec, RATE, torch.float64)]
        y = data(spec)[2].numpy()
        assert set(y.tolist()) <= set(got["kept"].tolist())
        plan = ShardPlan.contiguous(C, world)
        owner, _ = plan.locate(np.unique(y))
        for r in range(world):
            assert got["kept_per_rank"][r] == max(math.ceil(RATE * plan.rows(r) - 1e-9), int((owner == r).sum()))
    got = runs[world][case_key("disp_batch", RATE, torch.float64)]
    y = data("disp_batch")[2].numpy()
    kept = set(got["kept"].tolist())
    assert set(y.tolist()) <= kept
    for g in range(SUPER_OF_TAIL.max() + 1):  # super classes are kept whole or not at all
        members = {NUM_HEAD + i for i in np.flatnonzero(SUPER_OF_TAIL == g)}
        assert members <= kept or not (members & kept)


def test_checkpoint_from_two_ranks_resumes_on_three(runs):
    """2 SGD steps (momentum) on 2 ranks, saved in global class order, loaded on 3 ranks for a
    third step: the same classifier as 3 steps in one process."""
    ck = runs[3]["checkpoint"]
    torch.testing.assert_close(ck["round_trip"][0], ck["saved"]["weight"], rtol=0, atol=0)
    torch.testing.assert_close(ck["round_trip"][1], ck["saved"]["momentum"], rtol=0, atol=0)
    x, w, y = data("arcface")
    single = make_head("arcface").double()
    load_full_weight(single, w)
    opt = sgd_steps(single, x, y, 2)
    torch.testing.assert_close(ck["saved"]["weight"], single.weight.detach(), **F64)
    torch.testing.assert_close(ck["saved"]["momentum"], opt.state[single.weight]["momentum_buffer"], **F64)
    sgd_steps(single, x, y, 1, opt)
    torch.testing.assert_close(ck["resumed"], single.weight.detach(), **F64)
    assert not torch.allclose(ck["resumed"], ck["saved"]["weight"])


# ------------------------------------------------------------------------------------------------
# in-process: plans, world size 1 without a process group, sampling
def test_contiguous_plan_is_balanced_and_round_trips():
    for classes, world in [(23, 1), (23, 2), (23, 3), (5, 8), (100_000, 64)]:
        plan = ShardPlan.contiguous(classes, world)
        rows = plan.row_counts
        assert rows.sum() == classes and rows.max() - rows.min() <= 1
        c = np.arange(classes)
        rank, local = plan.locate(c)
        np.testing.assert_array_equal(plan.global_class(rank, local), c)
        np.testing.assert_array_equal(np.concatenate([plan.classes(r) for r in range(world)]), c)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
def test_dispersion_plan_keeps_super_classes_whole_and_balances_rows(world):
    rng = np.random.default_rng(world)
    sizes = np.concatenate([[40], rng.integers(1, 8, size=60)])
    sup = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    num_head = 150
    plan = ShardPlan.dispersion(num_head, sup, world)
    total = num_head + len(sup)
    rows = plan.row_counts
    assert rows.sum() == total
    assert rows.max() - rows.min() <= max(1, sizes.max())
    if world <= 4:
        assert rows.max() - rows.min() <= 1  # enough head rows to level every rank
    rank, local = plan.locate(np.arange(total))
    np.testing.assert_array_equal(plan.global_class(rank, local), np.arange(total))
    tail_rank = rank[num_head:]
    for g in range(len(sizes)):  # all members of a super class on the rank that holds it
        assert (tail_rank[sup == g] == plan.super_rank[g]).all()
    for r in range(world):
        loc = plan.local_dispersion(r)
        classes = plan.classes(r)
        assert (classes[:loc.num_head] < num_head).all() and (classes[loc.num_head:] >= num_head).all()
        np.testing.assert_array_equal(loc.global_super[loc.super_of_tail], sup[classes[loc.num_head:] - num_head])


def test_plan_rejects_bad_input():
    with pytest.raises(ValueError):
        ShardPlan.contiguous(0, 2)
    with pytest.raises(ValueError, match="at least one"):
        ShardPlan.dispersion(3, np.array([0, 2]), 2)
    with pytest.raises(ValueError):
        ShardPlan.contiguous(10, 3).locate([10])


@pytest.mark.parametrize("spec", list(SPECS))
def test_world_size_one_without_process_group_equals_unsharded_head(spec):
    assert not dist.is_initialized()
    family, kw = SPECS[spec]
    x, w, y = data(spec)
    head = make_head(spec).double()
    if family == "margin":
        ref = SoftmaxHead(D, C) if kw["kind"] == "softmax" else MarginHead(D, C, kw["kind"], kw["s"], kw["m"])
    else:
        ref = DispersionHead(D, NUM_HEAD, SUPER_OF_TAIL, **kw)
    ref = ref.double()
    with torch.no_grad():
        ref.weight.copy_(w)
    load_full_weight(head, w)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = head(x1, y), ref(x2, y)
    a.loss.backward()
    b.loss.backward()
    torch.testing.assert_close(a.loss, b.loss, **F64)
    torch.testing.assert_close(x1.grad, x2.grad, **F64)
    torch.testing.assert_close(gather_full_rows(head, head.weight.grad), ref.weight.grad, **F64)


def test_sampling_is_deterministic_and_follows_the_step():
    positives = np.array([1, 4, 9])
    a = sample_units(50, positives, 0.2, seed=1, step=7, rank=0)
    np.testing.assert_array_equal(a, sample_units(50, positives, 0.2, seed=1, step=7, rank=0))
    assert not np.array_equal(a, sample_units(50, positives, 0.2, seed=1, step=8, rank=0))
    assert len(a) == 10 and set(positives) <= set(a) and (np.diff(a) > 0).all()
    assert kept_count(0.1, 30, 2) == 3 and kept_count(0.1, 30, 5) == 5 and kept_count(1.0, 30, 0) == 30
    np.testing.assert_array_equal(sample_units(30, positives, 1.0, 0, 0, 0), np.arange(30))
    # the head's counter: consecutive forward passes use steps 0, 1, ...; eval mode does not sample
    x, w, y = data("arcface")
    head = make_head("arcface", RATE)
    head(x.float(), y)
    first = head.last_kept.copy()
    head(x.float(), y)
    assert head.step == 2
    head(x.float(), y, step=0)
    np.testing.assert_array_equal(head.last_kept, first)
    head.eval()
    head(x.float(), y)
    assert head.last_kept is None and head.step == 1
    with pytest.raises(ValueError, match="sample_rate"):
        make_head("arcface", 0.0)


def test_initial_rows_do_not_depend_on_the_plan():
    full = ShardedMarginHead(D, 9000, kind="arcface").weight.detach()
    assert full.std().item() == pytest.approx(0.01, rel=0.05)
    plan = ShardPlan.contiguous(9000, 3)
    from tailface.heads.sharded import init_rows

    parts = torch.cat([init_rows(plan.classes(r), D) for r in range(3)])
    torch.testing.assert_close(parts, full, rtol=0, atol=0)
    assert not torch.equal(init_rows(np.arange(10), D, seed=1), full[:10])


def test_dispersion_head_from_prototype_matches_unsharded():
    from tailface.method.dispersion import create_dispersion_head
    from tailface.method.sharded_dispersion import create_sharded_dispersion_head

    proto = torch.randn(NUM_HEAD + SUPER_OF_TAIL.max() + 1, D, dtype=torch.float64)
    ours = create_sharded_dispersion_head(D, NUM_HEAD, SUPER_OF_TAIL, prototype_weight=proto).double()
    ref = create_dispersion_head(D, NUM_HEAD, SUPER_OF_TAIL, prototype_weight=proto).double()
    torch.testing.assert_close(gather_full_weight(ours), ref.weight.detach(), rtol=0, atol=0)
