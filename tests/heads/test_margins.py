import math

import pytest
import torch
from tests.heads.naive import target_cos

from tailface.heads.margins import margin_logits, target_margin

KINDS = ["none", "cosface", "arcface"]


def _cos_matrix(b=6, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, generator=g, dtype=torch.float64) * 1.6 - 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_margin_logits_match_naive_values(kind):
    cos = _cos_matrix()
    targets = torch.tensor([0, 4, 2, -1, 1, 4])
    s, m = 30.0, 0.4
    out = margin_logits(cos, targets, kind, s, m)
    for i in range(cos.shape[0]):
        for j in range(cos.shape[1]):
            expect = target_cos(cos[i, j], kind, m) if j == int(targets[i]) else cos[i, j]
            assert out[i, j].item() == pytest.approx(s * expect.item(), abs=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_margin_logits_mask_equals_index(kind):
    cos = _cos_matrix()
    targets = torch.tensor([0, 4, 2, 3, 1, 4])
    mask = torch.zeros_like(cos, dtype=torch.bool)
    mask[torch.arange(6), targets] = True
    torch.testing.assert_close(margin_logits(cos, mask, kind, 64.0, 0.5), margin_logits(cos, targets, kind, 64.0, 0.5))


def test_mask_allows_several_targets_per_row():
    cos = _cos_matrix()
    mask = torch.zeros_like(cos, dtype=torch.bool)
    mask[0, [1, 3]] = True
    out = margin_logits(cos, mask, "cosface", 1.0, 0.3)
    expect = cos.clone()
    expect[0, [1, 3]] -= 0.3
    torch.testing.assert_close(out, expect)


@pytest.mark.parametrize("kind", KINDS)
def test_margin_logits_gradcheck(kind):
    cos = _cos_matrix(4, 3, seed=1).requires_grad_()
    targets = torch.tensor([2, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda c: margin_logits(c, targets, kind, 8.0, 0.5), (cos,))


def _arcface_slope(c, m):
    """d cos(acos(c) + m) / dc = cos(m) + sin(m) * c / sqrt(1 - c^2) before pi, 1 after."""
    if c > math.cos(math.pi - m):
        return math.cos(m) + math.sin(m) * c / math.sqrt(1 - c * c)
    return 1.0


@pytest.mark.parametrize("m", [0.5, 0.3])
def test_arcface_boundary_values_and_gradients(m):
    th = math.cos(math.pi - m)
    points = [th + 1e-6, th - 1e-6, th + 1e-3, th - 1e-3, -1.0, 1.0, -0.999999, 0.999999, 0.0]
    cos = torch.tensor(points, dtype=torch.float64).requires_grad_()
    out = target_margin(cos, "arcface", m)
    out.sum().backward()
    assert torch.isfinite(cos.grad).all()
    for c, value, grad in zip(points, out.tolist(), cos.grad.tolist()):
        assert value == pytest.approx(target_cos(torch.tensor(c, dtype=torch.float64), "arcface", m).item(), abs=1e-9)
        if abs(c) < 1.0:
            assert grad == pytest.approx(_arcface_slope(c, m), rel=1e-6)
    # at cos = 1 the sine is clamped: slope cos(m); at cos = -1 the fallback: slope 1
    assert cos.grad[5].item() == pytest.approx(math.cos(m))
    assert cos.grad[4].item() == pytest.approx(1.0)


def test_arcface_monotonic_across_boundary():
    m = 0.5
    cos = torch.linspace(-1.0, 1.0, 20001, dtype=torch.float64)
    out = target_margin(cos, "arcface", m)
    assert (out[1:] - out[:-1] > 0).all()


def test_arcface_float32_finite_gradient_at_unit_cosines():
    cos = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], requires_grad=True)
    margin_logits(cos, torch.tensor([0, 0]), "arcface", 64.0, 0.5).sum().backward()
    assert torch.isfinite(cos.grad).all()


def test_easy_margin():
    cos = torch.tensor([0.3, -0.3, -0.95], dtype=torch.float64)
    out = target_margin(cos, "arcface", 0.5, easy_margin=True)
    assert out[0].item() == pytest.approx(math.cos(math.acos(0.3) + 0.5))
    assert out[1].item() == pytest.approx(-0.3)
    assert out[2].item() == pytest.approx(-0.95)


def test_bad_arguments():
    cos = _cos_matrix()
    with pytest.raises(ValueError, match="unknown margin"):
        margin_logits(cos, torch.zeros(6, dtype=torch.long), "sphere")
    with pytest.raises(ValueError, match="out of range"):
        margin_logits(cos, torch.full((6,), 5), "cosface")
    with pytest.raises(ValueError, match="one column per row"):
        margin_logits(cos, torch.zeros(5, dtype=torch.long), "cosface")
