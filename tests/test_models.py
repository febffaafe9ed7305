import pytest
import torch

from vislab.errors import VislabError
from vislab.models import create_model, list_models


def test_registry_lists_vislabs_own_classifiers():
    assert set(list_models("classification")) == {"model_a", "resnet9"}


@pytest.mark.parametrize(
    "name, kwargs, dim",
    [
        ("model_a", {}, 128),
        ("resnet9", {"width": 8}, 64),
        ("torchvision/resnext101_64x4d", {"input_size": 32}, 2048),
        ("timm/tf_efficientnet_lite0", {"input_size": 64}, 1280),
    ],
)
def test_pre_logits_is_the_input_of_the_last_layer(name, kwargs, dim):
    model = create_model(name, num_classes=7, **kwargs).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        logits = model(x)
    assert pre.shape == (2, dim) and logits.shape == (2, 7)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    expected = last(pre) * getattr(model, "scale", 1.0)
    assert torch.allclose(logits, expected, atol=1e-5)


def test_model_a_has_the_reports_shape():
    m = create_model("model_a", num_classes=50)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    pools = [x for x in m.modules() if isinstance(x, torch.nn.MaxPool2d)]
    fcs = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert (len(convs), len(bns), len(pools), len(fcs)) == (2, 2, 2, 3)


def _model_a_by_hand(m, x: torch.Tensor, grid: int) -> torch.Tensor:
    """Model A's logits written out: its two blocks, the feature map averaged over equal
    windows down to grid x grid (by reshaping, no pooling layer), then its three FC layers."""
    f = m.features(x)
    b, c, h, w = f.shape
    f = f.reshape(b, c, grid, h // grid, grid, w // grid).mean(dim=(3, 5))
    z = torch.relu(m.fc1(f.flatten(1)))
    return m.fc3(torch.relu(m.fc2(z)))


@pytest.mark.parametrize("size", [32, 64])
def test_model_a_takes_any_input_size_and_is_unchanged_at_32(size):
    """At 32x32 (the report's Model A) the feature map is fc1's grid as it stands; a larger
    input is averaged down to that grid; the weights are the same either way."""
    torch.manual_seed(0)
    m = create_model("model_a", num_classes=5).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(m(x), _model_a_by_hand(m, x, 8), atol=1e-5)
    assert m.fc1.in_features == 64 * 8 * 8  # sized for 32x32, as before


@pytest.mark.parametrize("name", ["model_a", "resnet9", "timm/tf_efficientnet_lite0"])
@pytest.mark.parametrize("size", [48, 75])
def test_every_classifier_takes_odd_sizes(name, size):
    kwargs = {"width": 8} if name == "resnet9" else {}
    m = create_model(name, num_classes=5, **kwargs).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, size, size)).shape == (1, 5)


def test_unknown_model_and_kwarg_are_user_errors():
    with pytest.raises(VislabError, match="unknown model 'nope'"):
        create_model("nope", num_classes=2)
    with pytest.raises(VislabError, match="model model_a: .*'depth'"):
        create_model("model_a", num_classes=2, depth=3)
    # a timm architecture built without stochastic depth (refused before its layers are made)
    with pytest.raises(VislabError, match=r"model timm/vgg11 has no model.kwargs.drop_path_rate"):
        create_model("timm/vgg11", num_classes=2, drop_path_rate=0.1)


def test_resnext_imagenet_weights_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(VislabError, match="resnext101_64x4d-173b62eb.pth.*weights: null"):
        create_model("torchvision/resnext101_64x4d", num_classes=50, weights="imagenet")


def test_resnext_loads_imagenet_weights_from_the_hub_cache(tmp_path, monkeypatch):
    from torchvision.models import resnext101_64x4d

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = resnext101_64x4d(weights=None)
    with torch.no_grad():
        reference.conv1.weight.fill_(0.123)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / "resnext101_64x4d-173b62eb.pth")
    name = "torchvision/resnext101_64x4d"
    model = create_model(name, num_classes=50, weights="imagenet", input_size=32)
    assert torch.all(model.net.body.conv1.weight == 0.123)
    assert model.net.head.out_features == 50  # the 1000-class head is replaced
    torch.save({"nonsense": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(VislabError, match="does not fit this model"):
        create_model(name, num_classes=50, weights=str(tmp_path / "bad.pth"))
