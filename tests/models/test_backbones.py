import pytest
import torch

from tailface.errors import ConfigError
from tailface.models import create_model, default_input_size, list_models
from tailface.models.mobilefacenet import BOTTLENECKS


def test_every_backbone_is_registered():
    assert {"small", "resnet34", "iresnet50", "iresnet100", "mobilefacenet"} <= set(list_models())
    assert default_input_size("small") == 32
    for name in ("resnet34", "iresnet50", "iresnet100", "mobilefacenet"):
        assert default_input_size(name) == 112


@pytest.mark.parametrize("name,size", [("small", 32), ("small", 48), ("resnet34", 32), ("iresnet50", 32),
                                       ("mobilefacenet", 32)])
def test_forward_backward_at_low_resolution(name, size):
    torch.manual_seed(0)
    model = create_model(name, input_size=size, embedding_size=24)
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, 24)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    torch.testing.assert_close(a, b)
    # samples do not interact in eval mode
    torch.testing.assert_close(model(x[:1]).detach(), a[:1], rtol=1e-3, atol=1e-4)


def test_small_works_at_other_sizes():
    for size in (24, 28, 37):
        model = create_model("small", input_size=size, embedding_size=8).eval()
        assert model(torch.randn(2, 3, size, size)).shape == (2, 8)


@pytest.mark.parametrize("name,bad", [("resnet34", 100), ("iresnet50", 56 + 4), ("mobilefacenet", 8)])
def test_bad_input_size_is_a_config_error(name, bad):
    with pytest.raises(ConfigError, match=f"{name}.*multiple of"):
        create_model(name, input_size=bad)


def test_small_rejects_tiny_input():
    with pytest.raises(ConfigError, match="small.*>= 8"):
        create_model("small", input_size=4)


def test_bad_embedding_size_is_a_config_error():
    with pytest.raises(ConfigError, match="embedding_size"):
        create_model("small", embedding_size=0)


# ---- parameter counts against the architecture written out layer by layer ----

def conv(cin, cout, k, groups=1):
    return cin // groups * cout * k * k


def bn(c):
    return 2 * c


def linear(cin, cout):
    return cin * cout + cout


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet34_parameter_count():
    side, emb = 2, 40  # input 32
    total = conv(3, 64, 3) + bn(64) + 64  # stem with PReLU
    cin = 64
    for n, c in zip((3, 4, 6, 3), (64, 128, 256, 512)):
        for i in range(n):
            total += conv(cin, c, 3) + bn(c) + conv(c, c, 3) + bn(c)
            if i == 0:
                total += conv(cin, c, 1) + bn(c)
            cin = c
    total += bn(512) + linear(512 * side * side, emb) + bn(emb)
    assert count(create_model("resnet34", input_size=32, embedding_size=emb)) == total


def iresnet_count(layers, side, emb):
    total = conv(3, 64, 3) + bn(64) + 64
    cin = 64
    for n, c in zip(layers, (64, 128, 256, 512)):
        for i in range(n):
            total += bn(cin) + conv(cin, c, 3) + bn(c) + c + conv(c, c, 3) + bn(c)
            if i == 0:
                total += conv(cin, c, 1) + bn(c)
            cin = c
    return total + bn(512) + linear(512 * side * side, emb) + bn(emb)


def test_iresnet50_parameter_count():
    model = create_model("iresnet50", input_size=32, embedding_size=64)
    assert count(model) == iresnet_count((3, 4, 14, 3), 2, 64)


def test_mobilefacenet_parameter_count():
    emb = 128
    total = conv(3, 64, 3) + bn(64) + 64 + conv(64, 64, 3, groups=64) + bn(64) + 64
    cin = 64
    for t, c, n, _ in BOTTLENECKS:
        for _ in range(n):
            hidden = cin * t
            total += conv(cin, hidden, 1) + bn(hidden) + hidden
            total += conv(hidden, hidden, 3, groups=hidden) + bn(hidden) + hidden
            total += conv(hidden, c, 1) + bn(c)
            cin = c
    total += conv(cin, 512, 1) + bn(512) + 512
    total += conv(512, 512, 7, groups=512) + bn(512)  # GDConv, 7x7 at 112x112 input
    total += conv(512, emb, 1) + bn(emb)
    assert count(create_model("mobilefacenet", input_size=112, embedding_size=emb)) == total


def test_small_parameter_count():
    w, emb = 16, 128
    widths = [(3, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 4 * w), (4 * w, 4 * w), (4 * w, 8 * w)]
    total = sum(conv(a, b, 3) + bn(b) for a, b in widths)
    total += bn(8 * w) + linear(8 * w * 4 * 4, emb) + bn(emb)
    assert count(create_model("small", embedding_size=emb)) == total
