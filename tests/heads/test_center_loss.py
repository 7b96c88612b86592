import pytest
import torch
from tests.heads import naive

from tailface.heads import create_head


def _head(e=5, c=4, lam=0.003, alpha=0.5, seed=0):
    head = create_head("center_loss", e, c, lam=lam, alpha=alpha).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.normal_(generator=g)
        head.centers.normal_(generator=g)
    return head


def _data(b=9, e=5, c=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, e, generator=g, dtype=torch.float64), torch.tensor([0, 2, 2, 1, 0, 2, 1, 1, 2][:b])


def test_defaults():
    head = create_head("center_loss", 8, 3)
    assert (head.lam, head.alpha) == (0.003, 0.5)
    assert torch.equal(head.centers, torch.zeros(3, 8))


def test_loss_and_gradients_match_naive():
    head = _head(lam=0.7)
    x, y = _data()
    centers_before = head.centers.clone()
    xa = x.clone().requires_grad_()
    out = head(xa, y)
    out.loss.backward()

    xn = x.clone().requires_grad_()
    wn = head.weight.detach().clone().requires_grad_()
    ref = naive.softmax_loss(xn, wn, y) + 0.7 * naive.center_term(xn, y, centers_before)
    ref.backward()
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-12)
    torch.testing.assert_close(xa.grad, xn.grad, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(head.weight.grad, wn.grad, rtol=1e-10, atol=1e-14)
    assert head.centers.grad is None and not head.centers.requires_grad
    assert "centers" in dict(head.named_buffers()) and "centers" not in dict(head.named_parameters())


def test_center_update_matches_paper_formula():
    head = _head(alpha=0.4)
    x, y = _data()
    before = head.centers.clone()
    head.train()
    head(x, y)
    expect = before.clone()
    for j in range(before.shape[0]):
        members = [i for i in range(len(y)) if int(y[i]) == j]
        delta = sum((before[j] - x[i] for i in members), torch.zeros_like(before[j])) / (1 + len(members))
        expect[j] = before[j] - 0.4 * delta
    torch.testing.assert_close(head.centers, expect, rtol=0, atol=1e-14)
    assert torch.equal(head.centers[3], before[3])  # class 3 absent from the batch: unchanged


def test_loss_uses_centres_before_the_update():
    head = _head(lam=1.0)
    x, y = _data()
    before = head.centers.clone()
    loss = head(x, y).loss.item()
    ref = naive.softmax_loss(x, head.weight.detach(), y) + naive.center_term(x, y, before)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    assert not torch.equal(head.centers, before)


def test_no_update_in_eval_mode():
    head = _head()
    before = head.centers.clone()
    head.eval()
    head(*_data())
    assert torch.equal(head.centers, before)


def test_centres_resume_from_state_dict():
    x, y = _data()
    a = _head()
    a(x, y)
    b = create_head("center_loss", 5, 4).double()
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.centers, a.centers)
    x2 = x.flip(0)
    assert a(x2, y).loss.item() == b(x2, y).loss.item()
    assert torch.equal(a.centers, b.centers)


def test_gradcheck():
    head = _head(e=3, c=3, lam=0.5)
    head.eval()  # no centre update during the repeated evaluations
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    y = torch.tensor([0, 1, 1, 2, 0])
    w = head.weight.detach().clone().requires_grad_()
    fn = lambda f, weight: torch.func.functional_call(head, {"weight": weight}, (f, y)).loss  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        create_head("center_loss", 4, 3, alpha=1.5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        create_head("center_loss", 4, 3)(torch.randn(2, 4), torch.tensor([0, 3]))
