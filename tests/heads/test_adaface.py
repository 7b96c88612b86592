"""AdaFace (``heads/adaface.py``): loss, gradients and the running norm statistics over two
training steps against the naive float64 reference (``naive_tail_heads.py``), hand-computed target
logits that pin the signs of g_angle and g_add, eval mode, the buffers in checkpoints (a resumed
run continues them exactly), and the argument checks. The sharded head is compared with this one
in ``test_tail_heads_sharded.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.heads import naive_tail_heads as naive

from tailface.data import InMemoryFaceSet
from tailface.errors import ConfigError
from tailface.heads import create_head
from tailface.heads.adaface import AdaFaceHead
from tailface.heads.spec import HeadSpec
from tailface.train import TrainConfig, build_head, build_model, fit, load_checkpoint, load_head

B, D, C = 10, 4, 5


def data(seed=0):
    """Features of norms 0.3 .. 6 (some nz clipped at -1 and +1 with mean 2, std 1, h 1); sample 0
    right on its row with a large norm (theta - m < eps: the lower clamp), sample 1 opposite its
    row with a small norm (theta + m > pi - eps: the upper clamp)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(C, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (B,), generator=g)
    x = torch.nn.functional.normalize(torch.randn(B, D, generator=g, dtype=torch.float64), dim=1)
    x = x * torch.linspace(0.3, 6.0, B, dtype=torch.float64)[torch.randperm(B, generator=g)][:, None]
    x[0] = 5.5 * torch.nn.functional.normalize(w[y[0]] + 0.01 * x[0], dim=0)
    x[1] = -0.3 * torch.nn.functional.normalize(w[y[1]] + 0.01 * x[1], dim=0)
    return x, w, y


CASES = [  # head kwargs, initial (mean, std) of the running statistics
    ({}, (2.0, 1.0)),
    ({"m": 0.5, "h": 1.0, "s": 16.0, "momentum": 0.3}, (2.0, 1.0)),
    ({"s": 8.0}, (20.0, 100.0)),  # the initial values: nz near 0 (CosFace-like)
]


def head_with(w, mean, std, **kwargs):
    head = create_head("adaface", D, C, **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(w)
        head.running_mean.fill_(mean)
        head.running_std.fill_(std)
    return head


@pytest.mark.parametrize("kwargs,start", CASES)
def test_two_training_steps_match_naive(kwargs, start):
    x, w, y = data()
    head = head_with(w, *start, **kwargs)
    m, h, s, a = kwargs.get("m", 0.4), kwargs.get("h", 0.333), kwargs.get("s", 64.0), kwargs.get("momentum", 0.01)
    mean, std = start
    wn = w.clone().requires_grad_()
    for step, batch in enumerate((x, 0.5 * x.flip(0))):  # second step: other norms, other statistics
        xa = batch.clone().requires_grad_()
        out = head(xa, y)
        head.weight.grad = None
        out.loss.backward()
        mean, std = naive.norm_statistics(batch, mean, std, a)
        assert head.running_mean.item() == pytest.approx(mean, rel=1e-12), step
        assert head.running_std.item() == pytest.approx(std, rel=1e-12), step
        xn = batch.clone().requires_grad_()
        wn.grad = None
        loss = naive.adaface_loss(xn, wn, y, mean, std, m, h, s)
        loss.backward()
        torch.testing.assert_close(out.loss, loss.detach(), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-8, atol=1e-12)
    cos = torch.nn.functional.normalize(0.5 * x.flip(0), dim=1) @ torch.nn.functional.normalize(w, dim=1).t()
    torch.testing.assert_close(out.logits, s * cos)  # reported logits: s cos, no margin


def test_the_clamps_and_the_clipped_scalers_are_exercised():
    x, w, y = data()
    norms = x.norm(dim=1)
    nz = ((norms - 2.0) / (1.0 + 1e-3)).clamp(-1, 1)  # h 1, mean 2, std 1
    assert (nz == 1).any() and (nz == -1).any() and (nz.abs() < 1).any()
    theta = torch.acos(torch.nn.functional.cosine_similarity(x, w[y], dim=1))
    # first step of the first two CASES: nz_0 = 1 (theta - m clamped at eps) and nz_1 <= -0.25
    # (theta + m |nz| clamped at pi - eps)
    assert theta[0] - 0.4 < 1e-3 and theta[1] + 0.1 > math.pi - 1e-3


def test_hand_computed_target_logits_pin_g_angle_and_g_add():
    """Rows e_0, e_1; s 1, m 0.4, h 1; eval mode with mean 1.5 and std + eps = 1. A class-0
    sample along e_1 (theta = pi / 2, the other cosine 1) has loss log(1 + e^(1 - t)) with target
    t: norm 2.5 (nz = 1) cos(pi/2 - m) - 2m = sin(m) - 2m; norm 1.5 (nz = 0, CosFace) -m;
    norm 0.5 (nz = -1, ArcFace) cos(pi/2 + m) = -sin(m)."""
    head = AdaFaceHead(2, 2, m=0.4, h=1.0, s=1.0).double().eval()
    with torch.no_grad():
        head.weight.copy_(torch.eye(2, dtype=torch.float64))
        head.running_mean.fill_(1.5)
        head.running_std.fill_(1.0 - 1e-3)
    for norm, target in [(2.5, math.sin(0.4) - 0.8), (1.5, -0.4), (0.5, -math.sin(0.4)), (9.0, math.sin(0.4) - 0.8)]:
        loss = head(torch.tensor([[0.0, norm]], dtype=torch.float64), torch.tensor([0])).loss
        assert loss.item() == pytest.approx(math.log(1 + math.exp(1 - target)), rel=1e-12), norm
    assert (head.running_mean.item(), head.running_std.item()) == (1.5, 1.0 - 1e-3)  # eval: not updated


def test_a_batch_of_one_updates_the_mean_only():
    head = AdaFaceHead(2, 2, momentum=0.5)
    head(torch.tensor([[3.0, 4.0]]), torch.tensor([1]))
    assert (head.running_mean.item(), head.running_std.item()) == (12.5, 100.0)


def test_the_statistics_are_in_the_state_dict_and_load_back():
    x, w, y = data()
    head = head_with(w, 2.0, 1.0, momentum=0.3)
    head(x, y)
    state = head.state_dict()
    assert set(state) == {"weight", "running_mean", "running_std"}
    fresh = create_head("adaface", D, C).double()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.running_mean, head.running_mean) and torch.equal(fresh.running_std, head.running_std)


def _faces():
    rng = np.random.default_rng(0)
    return InMemoryFaceSet(rng.integers(0, 256, (48, 16, 16, 3), dtype=np.uint8), np.arange(48) % 6)


def _fit(out, **train):
    torch.manual_seed(0)
    model = build_model("small", input_size=16, embedding_size=8, width=4)
    head = build_head("adaface", 8, 6, s=8.0, momentum=0.2)
    cfg = dict(epochs=2, batch_size=12, lr=0.05, warmup_epochs=0, milestones=[], log_every=1, progress=False,
               device="cpu", seed=3)
    fit(model, head, _faces(), TrainConfig.from_dict({**cfg, **train}), out)


def test_a_resumed_run_continues_the_running_statistics(tmp_path):
    _fit(tmp_path / "full")
    _fit(tmp_path / "cut", max_steps=3)
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")["head"]
    assert cut["running_mean"].item() != 20.0 and cut["running_std"].item() != 100.0
    _fit(tmp_path / "cut")  # resumes at step 3
    full, resumed = (load_checkpoint(tmp_path / name / "final.pt")["head"] for name in ("full", "cut"))
    for key in ("weight", "running_mean", "running_std"):
        assert torch.equal(full[key], resumed[key]), key
    head, _ = load_head(tmp_path / "cut" / "final.pt")
    assert torch.equal(head.running_mean, full["running_mean"])


def test_bad_arguments():
    for kwargs, match in [({"m": -0.1}, "m must"), ({"h": float("nan")}, "h must"), ({"momentum": 0}, "momentum"),
                          ({"momentum": 1.5}, "momentum"), ({"s": 0}, "scale")]:
        with pytest.raises(ValueError, match=match):
            AdaFaceHead(2, 3, **kwargs)
    with pytest.raises(ConfigError, match="unexpected"):
        HeadSpec.from_block({"name": "adaface", "margin": "arcface"})
    spec = HeadSpec.from_block({"name": "adaface", "m": 0.4, "h": 0.333, "s": 64.0, "sharded": "auto"})
    assert spec.margin is None  # (not a margin the dispersion head could apply)
