"""VPL (``heads/vpl.py``): loss and gradients (features, rows) against the naive float64 reference
(``naive_tail_heads.py``) with live, stale and never-written memory entries, the memory update
(features, stamps, the last sample of a class, the iteration counter) over several steps across
``start_iter``, the ArcFace head before the start, eval mode, the per-epoch liveness report,
checkpoints and a resumed training run (bit for bit), and the argument checks. The sharded head
is compared with this one in ``test_vpl_sharded.py``."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from tests.heads import naive_tail_heads as naive

from tailface.data import InMemoryFaceSet
from tailface.data.label_space import ClassStats
from tailface.errors import ConfigError
from tailface.heads import create_head
from tailface.heads.spec import HeadSpec
from tailface.heads.vpl import VPLHead
from tailface.train import TrainConfig, build_head, build_model, fit, load_checkpoint, load_head

B, D, C = 8, 4, 6
COUNTS = np.array([30, 2, 5, 1, 12, 3])  # groups A D C D B D (a 21, b 10, c 4): tail 1, 2, 3, 5
STATS = ClassStats(COUNTS)


def data(seed=0, steps=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    xs = [torch.randn(B, D, generator=g, dtype=torch.float64) * 3 for _ in range(steps)]
    ys = [torch.randint(0, C, (B,), generator=g) for _ in range(steps)]
    return w, xs, ys


def head_with(w, **kwargs):
    head = create_head("vpl", D, C, class_stats=STATS, **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(w)
    return head


def unit_rows(n, seed):
    return torch.nn.functional.normalize(torch.randn(n, D, generator=torch.Generator().manual_seed(seed),
                                                     dtype=torch.float64), dim=1)


def test_live_stale_and_unwritten_entries_match_naive():
    """Iteration 10 (start 4, delta 3): classes 0, 2 written at 9 and 7 (live), 1 at 6 (stale by one),
    3 at 10 - 3 = 7 (live, the edge), 4 and 5 never written. Loss and gradients as the naive
    loops; then the memory holds the batch's unit features (the last sample of a repeated class)."""
    w, (x,), _ = data(1)
    y = torch.tensor([0, 1, 2, 0, 4, 1, 3, 0])  # classes 0 and 1 repeated
    head = head_with(w, start_iter=4, delta=3, lam=0.3, s=8.0, m=0.4)
    memory, stamps = unit_rows(C, 5), [9, 6, 7, 7, 0, 0]
    with torch.no_grad():
        head.memory.copy_(memory)
        head.memory_step.copy_(torch.tensor(stamps))
        head.iteration.fill_(9)
    live = naive.vpl_live(10, stamps, 4, 3)
    assert live == [True, False, True, True, False, False]
    assert head.live().tolist() == live
    xa = x.clone().requires_grad_()
    out = head(xa, y)
    out.loss.backward()
    xn, wn = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss = naive.vpl_loss(xn, wn, y, memory, live, lam=0.3, s=8.0, m=0.4)
    loss.backward()
    torch.testing.assert_close(out.loss, loss.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-8, atol=1e-12)
    # the update: every class of the batch gets its last sample's unit feature and the stamp 10
    want_memory, want_stamps = naive.vpl_write(memory, stamps, x, y, 10)
    assert head.iteration.item() == 10
    assert head.memory_step.tolist() == want_stamps == [10, 10, 10, 10, 10, 0]
    torch.testing.assert_close(head.memory, want_memory, rtol=0, atol=1e-15)
    torch.testing.assert_close(head.memory[0], x[7] / x[7].norm(), rtol=0, atol=1e-15)  # not x[0] or x[3]
    assert torch.equal(head.memory[5], memory[5])
    # reported logits: s cos against the prototypes, without margin
    protos = torch.stack([naive.unit((1 - 0.3) * naive.unit(w[j]) + 0.3 * memory[j]) if live[j]
                          else naive.unit(w[j]) for j in range(C)])
    torch.testing.assert_close(out.logits, 8.0 * torch.nn.functional.normalize(x, dim=1) @ protos.t())


def test_several_steps_from_a_fresh_head_match_naive():
    """Five training steps from iteration 0 with start 2, delta 1: nothing live at steps 1-2, then
    the classes of the previous step (delta 1) only; memory and stamps tracked by the naive update."""
    w, xs, ys = data(2, steps=5)
    head = head_with(w, start_iter=2, delta=1, s=16.0)
    wn = w.clone().requires_grad_()
    memory, stamps = torch.zeros(C, D, dtype=torch.float64), [0] * C
    lives = []
    for t, (x, y) in enumerate(zip(xs, ys), start=1):
        live = naive.vpl_live(t, stamps, 2, 1)
        lives.append(sum(live))
        head.weight.grad, wn.grad = None, None
        xa, xn = x.clone().requires_grad_(), x.clone().requires_grad_()
        out = head(xa, y)
        out.loss.backward()
        loss = naive.vpl_loss(xn, wn, y, memory, live, s=16.0)
        loss.backward()
        torch.testing.assert_close(out.loss, loss.detach(), rtol=1e-10, atol=1e-10, msg=f"step {t}")
        torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-8, atol=1e-12, msg=f"step {t}")
        torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-8, atol=1e-12, msg=f"step {t}")
        memory, stamps = naive.vpl_write(memory, stamps, x, y, t)
        assert head.memory_step.tolist() == stamps and head.iteration.item() == t
        torch.testing.assert_close(head.memory, memory, rtol=0, atol=1e-15)
    assert lives[:2] == [0, 0] and min(lives[2:]) > 0  # the start, then live entries


def test_before_the_start_it_is_the_arcface_head_bit_for_bit():
    w, (x,), (y,) = data(3)
    vpl = head_with(w, s=16.0, m=0.3)
    arc = create_head("arcface", D, C, s=16.0, m=0.3).double()
    with torch.no_grad():
        arc.weight.copy_(w)
        vpl.memory.copy_(unit_rows(C, 1))
        vpl.memory_step.fill_(7990)
        vpl.iteration.fill_(7999)  # the next iteration is 8000 = start_iter: not yet
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = vpl(xa, y), arc(xb, y)
    a.loss.backward()
    b.loss.backward()
    assert torch.equal(a.loss, b.loss) and torch.equal(xa.grad, xb.grad)
    assert torch.equal(vpl.weight.grad, arc.weight.grad)
    assert vpl.iteration.item() == 8000 and vpl.live().all()  # (written at 8000: live at 8001)


def test_eval_mode_writes_nothing():
    w, (x,), (y,) = data(4)
    head = head_with(w, start_iter=0, delta=5)
    head(x, y)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    head.eval()
    train_logits = head.train()(x, y).logits
    head.load_state_dict(state)
    eval_logits = head.eval()(x, y).logits
    for key, value in head.state_dict().items():
        assert torch.equal(value, state[key]), key
    torch.testing.assert_close(eval_logits, train_logits)  # the prototypes of the next training step


def test_epoch_report_counts_the_live_tail_classes_per_step():
    """start 1, delta 2, classes 0-3 at steps 1-3, then 0, 1, 2 and 5 (first seen: not live at the
    step that writes it): step 1 nothing live, steps 2-4 classes 0-3. Tail classes 1, 2, 3, 5: 3 of
    4 live at 3 of 4 steps -> mean 9/16, any 3/4; head classes 0, 4: 3 live steps of 8 -> 3/8."""
    x = torch.randn(5, D, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2, 3])
    head = head_with(torch.randn(C, D, dtype=torch.float64), start_iter=1, delta=2)
    head.set_epoch(0)
    for step in range(4):
        head(x, y if step < 3 else torch.tensor([0, 1, 1, 2, 5]))
    assert head.memory_step.tolist() == [4, 4, 4, 3, 0, 4]
    assert head.epoch_report() == {"vpl/live_tail_mean": 9 / 16, "vpl/live_tail_any": 3 / 4,
                                   "vpl/live_head_mean": 3 / 8}
    head.set_epoch(0)  # the same epoch (a resumed run): the counts stay
    assert head.epoch_report()["vpl/live_tail_any"] == 3 / 4
    head.set_epoch(1)  # a new epoch: counted afresh
    assert head.live_steps.sum().item() == 0 and head.counted_steps.item() == 0
    head(x, y)
    assert head.epoch_report()["vpl/live_tail_mean"] == 1.0  # step 5: 1, 2, 5 written at 4, 3 at 3
    no_tail = create_head("vpl", D, 2, class_stats=ClassStats(np.array([40, 50])))
    assert math.isnan(no_tail.epoch_report()["vpl/live_tail_mean"])


def test_the_state_is_in_the_state_dict_and_loads_back():
    w, (x,), (y,) = data(5)
    head = head_with(w, start_iter=0)
    head(x, y)
    state = head.state_dict()
    assert set(state) == {"weight", "iteration", "memory", "memory_step", "live_steps", "counted_steps",
                          "counted_epoch"}
    fresh = create_head("vpl", D, C, class_stats=STATS).double()
    fresh.load_state_dict(state)
    for key, value in state.items():
        assert torch.equal(fresh.state_dict()[key], value), key


def _faces():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), [14, 8, 3, 2, 1, 2])
    return InMemoryFaceSet(rng.integers(0, 256, (len(labels), 16, 16, 3), dtype=np.uint8), labels)


def _fit(out, **train):
    torch.manual_seed(0)
    faces = _faces()
    model = build_model("small", input_size=16, embedding_size=8, width=4)
    head = build_head("vpl", 8, 6, class_stats=ClassStats.from_faceset(faces), start_iter=2, delta=2, s=8.0)
    cfg = dict(epochs=3, batch_size=6, lr=0.05, warmup_epochs=0, milestones=[], log_every=1, progress=False,
               device="cpu", seed=3, sampler={"name": "class_aware", "strength": 1.0})
    fit(model, head, faces, TrainConfig.from_dict({**cfg, **train}), out)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_a_resumed_run_continues_the_memory_and_reports_each_epoch(tmp_path):
    _fit(tmp_path / "full")
    _fit(tmp_path / "cut", max_steps=7)  # 5 steps an epoch: cut in the middle of the second
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")["head"]
    assert cut["iteration"].item() == 7 and (cut["memory_step"] > 0).any() and cut["counted_epoch"].item() == 1
    _fit(tmp_path / "cut")  # resumes at step 7
    full, resumed = (load_checkpoint(tmp_path / name / "final.pt")["head"] for name in ("full", "cut"))
    assert set(full) == set(resumed)
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert full["iteration"].item() == 15
    head, _ = load_head(tmp_path / "cut" / "final.pt")
    assert torch.equal(head.memory, full["memory"]) and head.iteration.item() == 15
    rows = _rows(tmp_path / "full" / "epochs.csv")
    assert rows == _rows(tmp_path / "cut" / "epochs.csv")
    assert rows[0] == ["epoch", "step", "metric", "value"]
    assert [r[:3] for r in rows[1:4]] == [["0", "5", "vpl/live_tail_mean"], ["0", "5", "vpl/live_tail_any"],
                                          ["0", "5", "vpl/live_head_mean"]]
    assert len(rows) == 1 + 3 * 3
    shares = [float(r[3]) for r in rows[1:]]
    assert all(0.0 <= v <= 1.0 for v in shares) and max(shares) > 0


def test_bad_arguments():
    for kwargs, match in [({"start_iter": -1}, "start_iter"), ({"delta": 1.5}, "delta"), ({"lam": 1.5}, "lam"),
                          ({"lam": float("nan")}, "lam"), ({"s": 0}, "scale")]:
        with pytest.raises(ValueError, match=match):
            VPLHead(2, 3, ClassStats.placeholder(3), **kwargs)
    with pytest.raises(ValueError, match="class statistics"):
        create_head("vpl", 2, 3)
    with pytest.raises(ConfigError, match="unexpected"):
        HeadSpec.from_block({"name": "vpl", "margin": "cosface"})
    with pytest.raises(ConfigError, match="lam"):
        HeadSpec.from_block({"name": "vpl", "lam": 2})
    spec = HeadSpec.from_block({"name": "vpl", "start_iter": 400, "delta": 200, "lam": 0.15, "sharded": "auto"})
    assert spec.margin is None  # (the memory is not something the dispersion head could apply)
