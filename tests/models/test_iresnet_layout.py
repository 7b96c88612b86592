"""The IResNets must accept InsightFace arcface_torch backbone state dicts unchanged."""

import pytest
import torch

from tailface.errors import DataError
from tailface.models import create_model, load_insightface_backbone


@pytest.fixture(scope="module")
def r100_state():
    return create_model("iresnet100").state_dict()


def expected_keys(layers):
    """State-dict keys of the arcface_torch IResNet layout, in module order."""
    def bn(prefix):
        return [f"{prefix}.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    keys = ["conv1.weight", *bn("bn1"), "prelu.weight"]
    for stage, n in enumerate(layers, start=1):
        for i in range(n):
            p = f"layer{stage}.{i}"
            keys += [*bn(f"{p}.bn1"), f"{p}.conv1.weight", *bn(f"{p}.bn2"), f"{p}.prelu.weight",
                     f"{p}.conv2.weight", *bn(f"{p}.bn3")]
            if i == 0:
                keys += [f"{p}.downsample.0.weight", *bn(f"{p}.downsample.1")]
    return keys + [*bn("bn2"), "fc.weight", "fc.bias", *bn("features")]


def test_iresnet100_keys_match_insightface(r100_state):
    assert list(r100_state) == expected_keys((3, 13, 30, 3))


def test_iresnet50_keys_match_insightface():
    assert list(create_model("iresnet50", input_size=32).state_dict()) == expected_keys((3, 4, 14, 3))


@pytest.mark.parametrize("key,shape", [
    ("conv1.weight", (64, 3, 3, 3)),
    ("prelu.weight", (64,)),
    ("layer1.0.bn1.weight", (64,)),
    ("layer1.0.conv1.weight", (64, 64, 3, 3)),
    ("layer1.0.downsample.0.weight", (64, 64, 1, 1)),
    ("layer2.0.bn1.weight", (64,)),
    ("layer2.0.conv1.weight", (128, 64, 3, 3)),
    ("layer2.0.conv2.weight", (128, 128, 3, 3)),
    ("layer2.0.downsample.0.weight", (128, 64, 1, 1)),
    ("layer3.29.prelu.weight", (256,)),
    ("layer4.2.bn3.running_var", (512,)),
    ("bn2.weight", (512,)),
    ("fc.weight", (512, 512 * 7 * 7)),
    ("fc.bias", (512,)),
    ("features.weight", (512,)),
])
def test_iresnet100_known_shapes(r100_state, key, shape):
    assert tuple(r100_state[key].shape) == shape


def test_features_scale_is_fixed():
    model = create_model("iresnet50", input_size=32, embedding_size=8)
    assert not model.features.weight.requires_grad
    assert torch.all(model.features.weight == 1)


def test_loader_round_trip_with_ddp_prefix(tmp_path):
    torch.manual_seed(0)
    source = create_model("iresnet50", input_size=32, embedding_size=16)
    path = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    target = create_model("iresnet50", input_size=32, embedding_size=16)
    load_insightface_backbone(target, path)
    for k, v in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[k], v)
    source.eval(), target.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))


def test_loader_reports_missing_and_misshapen_keys(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(create_model("iresnet50", input_size=32, embedding_size=16).state_dict(), path)
    with pytest.raises(DataError, match=r"r50\.pth.*wrong shape: fc\.weight"):
        load_insightface_backbone(create_model("iresnet50", input_size=32, embedding_size=8), path)
    with pytest.raises(DataError, match=r"r50\.pth.*missing: layer2\.4"):
        load_insightface_backbone(create_model("iresnet100", input_size=32, embedding_size=16), path)


def test_loader_rejects_absent_and_unreadable_files(tmp_path):
    model = create_model("iresnet50", input_size=32, embedding_size=8)
    with pytest.raises(DataError, match="not found"):
        load_insightface_backbone(model, tmp_path / "absent.pth")
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="garbage.pth: cannot read"):
        load_insightface_backbone(model, bad)
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(DataError, match="list.pth: expected a state dict"):
        load_insightface_backbone(model, listing)
