"""An ONNX export's input metadata is the preprocessing record's, read back into the same record;
its flip-fused graph is :func:`tailface.data.preprocess.flip_fusion` (no real data needed)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="pip install 'tailface[onnx]'")
pytest.importorskip("onnx", reason="pip install 'tailface[onnx]'")

from tailface.data import InMemoryFaceSet
from tailface.data.preprocess import INPUT_METADATA, TAILFACE_PREPROCESSING, flip_fusion
from tailface.deploy import export_onnx
from tailface.deploy.onnx_export import FlipFused
from tailface.eval.embedder import METADATA_KEYS, load_embedder
from tailface.train.checkpoint import build_model, load_model

SIZE = 32


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("small", input_size=SIZE, embedding_size=8)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    torch.save({"model": model.state_dict(), "meta": {"model_spec": {"name": "small", "kwargs":
                                                                      {"input_size": SIZE, "embedding_size": 8}}}},
               path)
    return path


def faces(n=5):
    rng = np.random.default_rng(2)
    return InMemoryFaceSet(rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8), np.arange(n) % 2)


@pytest.mark.parametrize("fused", [False, True])
def test_export_metadata_comes_from_the_record(checkpoint, tmp_path, fused):
    torch.set_num_threads(1)
    result = export_onnx(checkpoint, tmp_path / "m.onnx", flip_fusion=fused)
    prep = replace(TAILFACE_PREPROCESSING, size=(SIZE, SIZE))
    meta = result.metadata
    assert {k: meta[k] for k in INPUT_METADATA if k in meta} == prep.metadata(fused)
    assert "tailface.template" not in meta   # the checkpoint records no alignment template: nothing claimed
    assert set(METADATA_KEYS) - {"tailface.template"} <= set(meta)
    assert list(METADATA_KEYS)[:len(INPUT_METADATA)] == list(INPUT_METADATA)
    assert result.max_abs_diff <= 1e-4 * max(1.0, result.max_abs_value)
    emb = load_embedder(result.path, device="cpu")          # read back: the same record
    assert emb.preprocessing == prep and emb.flip_fused is fused
    want = load_embedder(checkpoint, device="cpu").extract(faces(), batch_size=2, progress=False)
    got = emb.extract(faces(), batch_size=3, progress=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_flip_fused_graph_is_the_flip_fusion_function(checkpoint, tmp_path):
    """The graph's f(x) + f(mirror x) equals flip_fusion of the backbone on any batch size."""
    torch.set_num_threads(1)
    model, _ = load_model(checkpoint)
    x = TAILFACE_PREPROCESSING.to_input(np.random.default_rng(3).integers(0, 256, (3, 3, SIZE, SIZE), dtype=np.uint8))
    with torch.inference_mode():
        want = flip_fusion(model, torch.from_numpy(x)).numpy()
        assert np.array_equal(FlipFused(model)(torch.from_numpy(x)).numpy(), want)
    emb = load_embedder(export_onnx(checkpoint, tmp_path / "fused.onnx", flip_fusion=True, check=False).path,
                        device="cpu")
    np.testing.assert_allclose(emb.forward(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(emb.forward(x[:1]), want[:1], rtol=1e-4, atol=1e-4)   # dynamic batch axis
