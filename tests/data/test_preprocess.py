"""The one preprocessing path: torch and NumPy give the same model input and the same flip fusion
for the same images; the tailface default is the training formula ``(x - 127.5) / 128``."""

import numpy as np
import pytest
import torch

from tailface.data import InMemoryFaceSet
from tailface.data.preprocess import (
    INPUT_METADATA,
    MEAN,
    STD,
    TAILFACE_PREPROCESSING,
    Preprocessing,
    flip_fusion,
    mirror,
    read_metadata,
    with_overrides,
)
from tailface.data.tensors import load_images, normalize
from tailface.errors import ConfigError

RECORDS = [
    TAILFACE_PREPROCESSING,
    Preprocessing((8, 6), (127.5,) * 3, (127.5,) * 3, "BGR"),                               # InsightFace's
    Preprocessing((8, 6), (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), "BGR"),   # per channel
    Preprocessing((8, 6), (0.0, 10.0, 20.0), (1.0, 2.0, 3.0), "RGB"),
    Preprocessing((8, 6), (127.5,) * 3, (128.0,) * 3, "RGB", "dlib-chip"),                   # template recorded
]


def images(n=5, h=8, w=6, seed=0) -> np.ndarray:
    """uint8 ``nx3xhxw`` RGB (every value 0-255 present when there are 256 or more)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, h, w), dtype=np.uint8)
    k = min(256, x.size)
    x.reshape(-1)[:k] = np.arange(k, dtype=np.uint8)
    return x


def reference(prep: Preprocessing, x: np.ndarray) -> np.ndarray:
    """Naive float64: channels reordered one by one, then (x - mean[c]) / std[c]."""
    order = [0, 1, 2] if prep.channel_order == "RGB" else [2, 1, 0]
    out = np.empty(x.shape, np.float64)
    for c, src in enumerate(order):
        out[:, c] = (x[:, src].astype(np.float64) - prep.mean[c]) / prep.std[c]
    return out


@pytest.mark.parametrize("prep", RECORDS, ids=lambda p: p.describe())
def test_torch_and_numpy_give_the_same_input(prep):
    x = images()
    a = prep.to_input(x)
    t = prep.to_input(torch.from_numpy(x))
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), a)                           # bit for bit
    np.testing.assert_allclose(a, reference(prep, x), rtol=1e-6, atol=1e-6)


def test_tailface_default_is_the_training_formula():
    assert (MEAN, STD) == (127.5, 128.0)
    assert TAILFACE_PREPROCESSING == Preprocessing((112, 112), (127.5,) * 3, (128.0,) * 3, "RGB")
    x = torch.from_numpy(images())
    want = (x.float() - 127.5) / 128                                      # subtract, then divide
    assert torch.equal(TAILFACE_PREPROCESSING.to_input(x), want)
    assert torch.equal(normalize(x), want)
    faces = InMemoryFaceSet(images().transpose(0, 2, 3, 1).copy(), np.arange(5) % 2)
    batch = load_images(faces, range(5), (8, 6))
    assert torch.equal(normalize(batch), want)                            # the training batches' input


def test_mirror_reverses_the_width_axis_only():
    x = images(2, 3, 4)
    np.testing.assert_array_equal(mirror(x), x[:, :, :, ::-1])
    np.testing.assert_array_equal(mirror(torch.from_numpy(x)).numpy(), x[:, :, :, ::-1])
    np.testing.assert_array_equal(mirror(mirror(x)), x)


class Asymmetric(torch.nn.Module):
    """Left-right asymmetric, so that f(x) != f(mirror x); counts its calls and their batch sizes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3 * 8 * 6, 4)
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(len(x))
        return self.fc(x.flatten(1))


def test_flip_fusion_is_the_same_function_for_torch_and_numpy():
    model = Asymmetric()
    x = TAILFACE_PREPROCESSING.to_input(images())

    def numpy_forward(a: np.ndarray) -> np.ndarray:        # what an onnxruntime session is to the embedder
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    with torch.no_grad():
        fused_t = flip_fusion(model, torch.from_numpy(x))
    fused_n = flip_fusion(numpy_forward, x)
    assert model.calls == [10, 10]                          # one pass over [x; mirror x] each
    np.testing.assert_array_equal(fused_t.numpy(), fused_n)
    w, b = (p.detach().double().numpy() for p in (model.fc.weight, model.fc.bias))
    x64 = x.astype(np.float64)
    want = x64.reshape(5, -1) @ w.T + b + x64[:, :, :, ::-1].reshape(5, -1) @ w.T + b   # f(x) + f(mirror x)
    np.testing.assert_allclose(fused_n, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(fused_n, 2 * numpy_forward(x), atol=1e-3)


@pytest.mark.parametrize("prep", RECORDS, ids=lambda p: p.describe())
@pytest.mark.parametrize("fused", [False, True])
def test_metadata_round_trip(prep, fused):
    meta = prep.metadata(fused)
    assert list(meta) == [k for k in INPUT_METADATA if k != "tailface.template" or prep.template is not None]
    back = read_metadata(meta)
    assert back["flip_fusion"] is fused and back["template"] == prep.template
    assert with_overrides(Preprocessing((1, 1)), back["size"], back["mean"], back["std"],
                          back["channel_order"], back["template"]) == prep


def test_tailface_metadata_values():
    """The strings tailface exports have always carried (ONNX files in the wild read them)."""
    assert TAILFACE_PREPROCESSING.metadata(True) == {
        "tailface.input_size": "112,112", "tailface.input_layout": "NCHW", "tailface.channel_order": "RGB",
        "tailface.mean": "127.5,127.5,127.5", "tailface.std": "128,128,128", "tailface.flip_fusion": "true"}
    assert read_metadata({}) == {"size": None, "mean": None, "std": None, "channel_order": None,
                                 "template": None, "flip_fusion": False}


def test_overrides_are_checked():
    with pytest.raises(ConfigError, match="std must be positive"):
        with_overrides(TAILFACE_PREPROCESSING, std="0")
    with pytest.raises(ConfigError, match="channel order must be RGB or BGR"):
        with_overrides(TAILFACE_PREPROCESSING, channel_order="GRB")
    assert with_overrides(TAILFACE_PREPROCESSING, size="112x96").size == (112, 96)
