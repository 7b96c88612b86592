"""The worked examples of docs/architecture.md: a margin head, a protocol and a dataset format,
each one new piece of code plus one registration, used through the ordinary entry points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailface.data import open as data_open
from tailface.data.faceset import InMemoryFaceSet
from tailface.data.open import Format, accepted_specs, open_faceset
from tailface.eval import api
from tailface.eval.features import save_features
from tailface.eval.protocols import Features, Protocol, register_protocol
from tailface.experiment import ExperimentConfig
from tailface.heads.base import register_head
from tailface.heads.margin_head import MarginHead
from tailface.heads.margins import Margin, margin_logits, register_margin
from tailface.heads.spec import HeadSpec
from tailface.method.dispersion import DispersionHead


# -- a margin head: "additive angular + cosine" margin, target cos(theta + m) - 0.1 ---------------
@register_margin("example-combined")
def _combined(cos: torch.Tensor, m: float, easy_margin: bool) -> torch.Tensor:
    theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    return torch.cos(theta + m) - 0.1


EXAMPLE_MARGIN = Margin("example-combined", scale=32.0, value=0.3)


@register_head("example-combined", margin=EXAMPLE_MARGIN)
def _combined_head(embedding_size: int, num_classes: int, s: float = EXAMPLE_MARGIN.scale,
                   m: float = EXAMPLE_MARGIN.value) -> torch.nn.Module:
    return MarginHead(embedding_size, num_classes, "example-combined", s, m)


def test_a_registered_margin_head_trains_and_disperses():
    spec = HeadSpec.from_block({"name": "example-combined", "m": 0.25})
    assert spec.margin == Margin("example-combined", 32.0, 0.25)
    head = _combined_head(4, 3, m=0.25).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    out = head(x, y)
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(head.weight, dim=1).t()
    theta = torch.acos(cos[torch.arange(5), y])
    expected = (cos * 32).index_put((torch.arange(5), y), 32 * (torch.cos(theta + 0.25) - 0.1))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(expected, y))
    torch.testing.assert_close(margin_logits(cos, y, "example-combined", 32, 0.25), expected)
    # the method accepts it, and its dispersion head applies the same margin
    ExperimentConfig.from_dict({"head": {"name": "example-combined"}, "method": {}})
    disp = DispersionHead(4, 2, np.array([0, 0]), margin=spec.margin)
    assert torch.isfinite(disp(torch.randn(3, 4), torch.tensor([0, 2, 3])).loss)


# -- a protocol: mean L2 norm of the features of the synthetic evaluation set ---------------------
def _mean_norm(features: Features, options) -> dict:
    return {"mean_norm": float(np.linalg.norm(features.features, axis=1).mean())}


register_protocol(Protocol("example-mean-norm", "synthetic", _mean_norm,
                           summary=lambda m: [("mean feature norm", f"{100 * m['mean_norm']:.2f}")]))


def test_a_registered_protocol_runs_through_evaluate_features(tmp_path):
    x = np.array([[3.0, 4.0], [0.0, 1.0]], dtype=np.float32)
    save_features(tmp_path / "f.npz", x, ["a", "b"], [0, 1])
    metrics = api.evaluate_features(tmp_path / "f.npz", "example-mean-norm", tmp_path / "out", plots=True)
    assert metrics["example-mean-norm"]["mean_norm"] == pytest.approx(3.0)
    assert ("example-mean-norm", "mean feature norm", "300.00") in api.summary_rows(metrics)
    ExperimentConfig.from_dict({"eval": {"protocols": ["example-mean-norm"]}})  # accepted in configs


# -- a dataset format: an .npz of images and labels ------------------------------------------------
class NpzFaceSet(InMemoryFaceSet):
    def __init__(self, path: str):
        with np.load(path) as z:
            super().__init__(z["images"], z["labels"], source=path)


def test_a_registered_dataset_format_opens_everywhere(tmp_path, monkeypatch):
    monkeypatch.setattr(data_open, "FORMATS", list(data_open.FORMATS))
    data_open.FORMATS.insert(1, Format("FILE.faces.npz", "images + labels arrays in one .npz",
                                       lambda s: s.endswith(".faces.npz"), lambda s, **kw: NpzFaceSet(s)))
    path = tmp_path / "set.faces.npz"
    np.savez(path, images=np.zeros((3, 8, 8, 3), np.uint8), labels=np.array([0, 1, 1]))
    faces = open_faceset(str(path))
    assert len(faces) == 3 and faces.num_classes == 2
    assert "FILE.faces.npz" in accepted_specs()
