import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from tailface.cli.main import main
from tailface.data import InMemoryFaceSet
from tailface.errors import DataError
from tailface.eval.features import extract_features, load_features, save_features
from tailface.train import TrainConfig, build_head, build_model, fit


class Asymmetric(nn.Module):
    """Left-right asymmetric so that f(x) != f(mirror x); has batch norm to check eval mode."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(self.bn(x).flatten(1))


def faces(n=13, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return InMemoryFaceSet(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 3)


def reference(model, faceset, flip):
    """Naive float64, one image at a time: f(x) (+ f(mirror x))."""
    model = model.double().eval()
    out = []
    for i in range(len(faceset)):
        x = (torch.from_numpy(faceset.read(i).astype(np.float64)).permute(2, 0, 1)[None] - 127.5) / 128
        f = model(x)
        if flip:
            f = f + model(torch.from_numpy(faceset.read(i)[:, ::-1].astype(np.float64).copy()).permute(2, 0, 1)[None]
                          .sub(127.5).div(128))
        out.append(f[0].detach().numpy())
    model.float()
    return np.stack(out)


@pytest.mark.parametrize("flip", [True, False])
def test_flip_fusion_equals_sum_of_image_and_mirror_in_order(flip):
    torch.manual_seed(0)
    model = Asymmetric()
    model.bn.running_mean.uniform_(-0.5, 0.5)  # eval mode must use these, not batch statistics
    model.train()
    data = faces()
    feats = extract_features(model, data, 8, batch_size=4, flip=flip, progress=False)
    assert feats.dtype == np.float32 and feats.shape == (13, 5)
    assert model.training  # mode restored
    np.testing.assert_allclose(feats, reference(model, data, flip), rtol=1e-5, atol=1e-5)
    # order: embedding a permuted set permutes the rows
    perm = np.random.default_rng(1).permutation(13)
    permuted = extract_features(model, data.subset(perm, relabel=False), 8, batch_size=5, flip=flip, progress=False)
    np.testing.assert_allclose(permuted, feats[perm], rtol=1e-6, atol=1e-6)


def test_mirror_changes_features():
    torch.manual_seed(0)
    model = Asymmetric()
    a = extract_features(model, faces(), 8, flip=False, progress=False)
    b = extract_features(model, faces(), 8, flip=True, progress=False)
    assert not np.allclose(2 * a, b, atol=1e-3)


def test_save_load_round_trip(tmp_path):
    feats = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    ids = ["b/2.jpg", "a/1.jpg", "c/3.jpg", "a/0.jpg"]
    save_features(tmp_path / "f.npz", feats, ids, [2, 0, 1, 0])
    loaded = load_features(tmp_path / "f.npz")
    assert np.array_equal(loaded["features"], feats) and loaded["image_ids"] == ids
    assert loaded["labels"].tolist() == [2, 0, 1, 0]
    save_features(tmp_path / "g.npz", feats, ids)
    assert load_features(tmp_path / "g.npz")["labels"] is None
    with pytest.raises(DataError, match="image ids"):
        save_features(tmp_path / "h.npz", feats, ids[:3])
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match="bad.npz"):
        load_features(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="not found"):
        load_features(tmp_path / "missing.npz")


def test_embed_cli_on_identity_and_plain_folders(tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = faces(n=12, size=16)
    model = build_model("small", input_size=16, embedding_size=8, width=4)
    cfg = TrainConfig(epochs=1, batch_size=4, max_steps=1, progress=False)
    ckpt = fit(model, build_head("softmax", 8, 3), data, cfg, tmp_path / "run")
    ident, plain = tmp_path / "ident", tmp_path / "plain"
    for i in range(6):
        (ident / f"id{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.read(i)).save(ident / f"id{i % 2}" / f"{i}.png")
        (plain / "sub").mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.read(i)).save(plain / ("sub" if i > 3 else ".") / f"{i}.png")
    assert main(["embed", str(ckpt), str(ident), str(tmp_path / "ident.npz")]) == 0
    assert main(["embed", str(ckpt), str(plain), str(tmp_path / "plain.npz"), "--no-flip"]) == 0
    a, b = load_features(tmp_path / "ident.npz"), load_features(tmp_path / "plain.npz")
    assert a["image_ids"] == ["id0/0.png", "id0/2.png", "id0/4.png", "id1/1.png", "id1/3.png", "id1/5.png"]
    assert a["labels"].tolist() == [0, 0, 0, 1, 1, 1] and b["labels"] is None
    assert b["image_ids"] == ["0.png", "1.png", "2.png", "3.png", "sub/4.png", "sub/5.png"]
    model.eval()
    expected = extract_features(model, data.subset([0, 1, 2, 3, 4, 5]), 16, flip=False, progress=False)
    np.testing.assert_allclose(b["features"], expected, rtol=1e-5, atol=1e-5)
    assert main(["embed", str(tmp_path / "missing.pt"), str(plain), str(tmp_path / "x.npz")]) == 2
