"""The embedder seam with a hand-built foreign ONNX model (BGR, another mean/std and size): the
features equal a NumPy reference computed with that preprocessing; flags vs metadata."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="pip install 'tailface[onnx]'")
onnx = pytest.importorskip("onnx", reason="pip install 'tailface[onnx]'")

from tailface.cli.main import main as cli_main
from tailface.data.faceset import InMemoryFaceSet
from tailface.errors import ConfigError
from tailface.eval.embedder import load_embedder

H, W, E = 24, 20, 6


def linear_onnx(path, weight: np.ndarray, metadata: dict | None = None, fixed_batch: bool = False):
    """y = flatten(x) @ weight: a tiny graph with input [N, 3, H, W]."""
    from onnx import TensorProto, helper, numpy_helper

    batch = 1 if fixed_batch else "N"
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, H, W])
    y = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [batch, E])
    nodes = [helper.make_node("Flatten", ["data"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w"], ["fc1"])]
    graph = helper.make_graph(nodes, "foreign", [x], [y], [numpy_helper.from_array(weight.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def faces(n=5, size=(32, 28)):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)
    return InMemoryFaceSet(images, np.arange(n) % 2, ["a", "b"], [f"i{k}.jpg" for k in range(n)])


def reference(faceset, weight, mean, std, bgr=True, flip=True):
    from tailface.data.tensors import load_images

    x = load_images(faceset, range(len(faceset)), (H, W)).numpy().astype(np.float32)  # N3HW RGB, resized
    if bgr:
        x = x[:, ::-1]
    x = (x - np.asarray(mean, np.float32).reshape(1, 3, 1, 1)) / np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    out = x.reshape(len(x), -1) @ weight
    if flip:
        out = out + x[:, :, :, ::-1].reshape(len(x), -1) @ weight
    return out


@pytest.fixture
def weight():
    return np.random.default_rng(0).standard_normal((3 * H * W, E)).astype(np.float32) / 100


def test_foreign_model_from_flags_matches_numpy_reference(tmp_path, weight):
    path = linear_onnx(tmp_path / "foreign.onnx", weight)
    with pytest.raises(ConfigError, match="--mean, --std"):
        load_embedder(path)
    emb = load_embedder(path, mean="10,20,30", std="50,60,70", channel_order="BGR")
    assert emb.image_size == (H, W)   # from the graph's fixed spatial input shape
    fs = faces()
    got = emb.extract(fs, batch_size=2, progress=False)
    want = reference(fs, weight, (10, 20, 30), (50, 60, 70))
    assert got.dtype == np.float32 and got.shape == (5, E)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(emb.extract(fs, flip=False, progress=False),
                               reference(fs, weight, (10, 20, 30), (50, 60, 70), flip=False), rtol=1e-5, atol=1e-5)


def test_metadata_read_and_flags_win(tmp_path, weight):
    meta = {"tailface.input_size": f"{H},{W}", "tailface.mean": "127.5,127.5,127.5", "tailface.std": "127.5",
            "tailface.channel_order": "BGR", "tailface.flip_fusion": "false"}
    path = linear_onnx(tmp_path / "meta.onnx", weight, meta, fixed_batch=True)
    fs = faces(3)
    emb = load_embedder(path)
    assert emb.preprocessing.channel_order == "BGR" and emb.preprocessing.std == (127.5,) * 3
    np.testing.assert_allclose(emb.extract(fs, batch_size=2, progress=False),   # fixed batch 1: chunked
                               reference(fs, weight, (127.5,) * 3, (127.5,) * 3), rtol=1e-5, atol=1e-5)
    emb = load_embedder(path, mean=0, std=1, channel_order="RGB")             # command line wins
    np.testing.assert_allclose(emb.extract(fs, progress=False),
                               reference(fs, weight, (0, 0, 0), (1, 1, 1), bgr=False), rtol=1e-5, atol=1e-4)
    with pytest.raises(ConfigError, match="input is 24x20"):
        load_embedder(path, size=32)


def test_cli_embed_with_foreign_onnx(tmp_path, weight, capsys):
    from PIL import Image

    path = linear_onnx(tmp_path / "foreign.onnx", weight)
    folder = tmp_path / "imgs"
    folder.mkdir()
    fs = faces(3, (H, W))
    for i in range(3):
        Image.fromarray(fs.read(i)).save(folder / f"{i}.png")
    out = tmp_path / "f.npz"
    assert cli_main(["embed", str(path), str(folder), str(out)]) == 2
    assert "give --mean, --std" in capsys.readouterr().err
    assert cli_main(["embed", str(path), str(folder), str(out), "--mean", "127.5", "--std", "128", "--bgr"]) == 0
    got = np.load(out)["features"]
    np.testing.assert_allclose(got, reference(fs, weight, (127.5,) * 3, (128,) * 3), rtol=1e-5, atol=1e-5)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert cli_main(["embed", str(bad), str(folder), str(out)]) == 2
    assert "bad.onnx" in capsys.readouterr().err


def test_missing_onnxruntime_names_the_extra(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ort(name, *args, **kw):
        if name in ("onnxruntime", "onnx"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"x")
    assert cli_main(["embed", str(path), str(tmp_path), str(tmp_path / "f.npz")]) == 2
    assert "pip install 'tailface[onnx]'" in capsys.readouterr().err
    assert cli_main(["export", str(tmp_path / "x.pt"), str(tmp_path / "x.onnx")]) == 2
    assert "pip install 'tailface[onnx]'" in capsys.readouterr().err
