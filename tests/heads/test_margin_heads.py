import pytest
import torch
from tests.heads import naive

from tailface.heads import create_head


def _data(b=7, e=5, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, e, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (b,), generator=g)
    return x, y


@pytest.mark.parametrize("name,kind,s,m", [("cosface", "cosface", 64.0, 0.35), ("arcface", "arcface", 64.0, 0.5)])
def test_defaults(name, kind, s, m):
    head = create_head(name, 5, 4)
    assert (head.kind, head.s, head.m) == (kind, s, m)
    assert head.weight.shape == (4, 5)


@pytest.mark.parametrize("name,kwargs", [("cosface", {}), ("cosface", {"s": 10.0, "m": 0.2}),
                                         ("arcface", {}), ("arcface", {"s": 16.0, "m": 0.3}),
                                         ("arcface", {"easy_margin": True})])
def test_loss_and_gradients_match_naive(name, kwargs):
    x, y = _data()
    head = create_head(name, 5, 4, **kwargs).double()
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(3))
    # sample 0 almost opposite its class row: theta + m passes pi (ArcFace fallback branch)
    x[0] = -2.0 * head.weight.detach()[y[0]] + 0.05 * x[0]
    xa = x.clone().requires_grad_()
    out = head(xa, y)
    out.loss.backward()

    xn = x.clone().requires_grad_()
    wn = head.weight.detach().clone().requires_grad_()
    ref = naive.margin_head_loss(xn, wn, y, head.kind, head.s, head.m, head.easy_margin)
    ref.backward()
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-8, atol=1e-12)
    # reported logits: s * cos without the margin; targets: the labels
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(head.weight.detach(), dim=1).t()
    torch.testing.assert_close(out.logits, head.s * cos)
    assert torch.equal(out.targets, y)


@pytest.mark.parametrize("name", ["cosface", "arcface"])
def test_gradcheck(name):
    x, y = _data(4, 3, 3, seed=1)
    head = create_head(name, 3, 3, s=4.0).double()
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(5))
    w = head.weight.detach().clone().requires_grad_()

    def fn(features, weight):
        return torch.func.functional_call(head, {"weight": weight}, (features, y)).loss

    assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(), w))


def test_float32_features_with_unit_cosines_give_finite_gradients():
    head = create_head("arcface", 4, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 4))
    x = torch.tensor([[1.0, 0, 0, 0], [-2.0, 0, 0, 0], [0, 0, 3.0, 0]], requires_grad=True)
    out = head(x, torch.tensor([0, 0, 2]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


def test_bad_labels_raise_clear_errors():
    head = create_head("cosface", 5, 4)
    x = torch.randn(3, 5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        head(x, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="one per feature"):
        head(x, torch.tensor([0, 1]))
