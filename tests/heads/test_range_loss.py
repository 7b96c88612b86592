import pytest
import torch
from tests.heads import naive

from tailface.heads import create_head
from tailface.heads.range_loss import range_inter, range_intra, range_loss

LABELS = torch.tensor([0, 1, 0, 2, 1, 0, 3, 0, 1, 2])  # class 3 has a single image


def _x(b=10, e=4, seed=0):
    return torch.randn(b, e, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("margin", [0.5, 50.0])
def test_terms_and_gradients_match_naive(k, margin):
    xa = _x().requires_grad_()
    xn = xa.detach().clone().requires_grad_()
    intra, inter = range_intra(xa, LABELS, k), range_inter(xa, LABELS, margin)
    ref_intra, ref_inter = naive.range_terms(xn, LABELS, k, margin)
    assert intra.item() == pytest.approx(ref_intra.item(), rel=1e-12)
    assert inter.item() == pytest.approx(ref_inter.item(), rel=1e-12, abs=1e-15)
    (0.3 * intra + 0.7 * inter).backward()
    (0.3 * ref_intra + 0.7 * ref_inter).backward()
    torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-10, atol=1e-14)


def test_inter_term_is_active_for_a_large_margin():
    x = _x()
    assert range_inter(x, LABELS, 1e6).item() > 0
    assert range_inter(x, LABELS, 0.0).item() == 0


def test_single_class_and_singletons():
    x = _x(4).requires_grad_()
    assert range_inter(x, torch.tensor([2, 2, 2, 2]), 10.0).item() == 0
    assert range_intra(x, torch.tensor([0, 1, 2, 3]), 2).item() == 0
    range_loss(x, torch.tensor([0, 1, 2, 3]), margin=0.0).backward()  # still differentiable
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_duplicate_images_give_finite_loss():
    x = _x(3)
    x = torch.cat([x, x[:1]]).requires_grad_()  # image 0 drawn twice
    loss = range_loss(x, torch.tensor([0, 1, 1, 0]), k=2, margin=5.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_gradcheck():
    x = _x(8, 3, seed=4).requires_grad_()
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    assert torch.autograd.gradcheck(lambda f: range_loss(f, y, k=2, margin=30.0, alpha=0.5, beta=2.0), (x,))


def test_head_matches_naive():
    head = create_head("range_loss", 4, 5, lam=0.01, k=2, margin=20.0, alpha=0.5, beta=2.0).double()
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(1))
    xa = _x().requires_grad_()
    out = head(xa, LABELS)
    out.loss.backward()
    xn = xa.detach().clone().requires_grad_()
    wn = head.weight.detach().clone().requires_grad_()
    intra, inter = naive.range_terms(xn, LABELS, 2, 20.0)
    ref = naive.softmax_loss(xn, wn, LABELS) + 0.01 * (0.5 * intra + 2.0 * inter)
    ref.backward()
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-12)
    torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-10, atol=1e-14)


def test_default_margin():
    head = create_head("range_loss", 16, 3)
    assert (head.margin, head.k, head.lam) == (32.0, 2, 1e-3)
