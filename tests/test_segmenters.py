import pytest
import torch
import torch.nn.functional as F

from vislab.errors import VislabError
from vislab.models import create_model, list_models
from vislab.models.segmenters import bilinear_kernel

SEGMENTERS = {
    "fcn32s_vgg16": {},
    "deeplabv3_resnet50": {},
    "lraspp_mobilenet_v3": {},
    "fpn": {"encoder": "timm/resnet18"},
    "unet": {"encoder": "timm/tf_efficientnet_lite0"},
    "deeplabv3plus": {"encoder": "timm/resnet18"},
}


def test_registry_lists_the_segmenters():
    assert set(list_models("segmentation")) == set(SEGMENTERS)


@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize("size", [(64, 64), (72, 100)])
def test_logits_come_out_at_the_input_resolution(name, size):
    model = create_model(name, num_classes=7, **SEGMENTERS[name])
    x = torch.randn(2, 3, *size)
    model.train()
    out = model(x)
    assert out["out"].shape == (2, 7, *size)
    assert ("aux" in out) == (name == "deeplabv3_resnet50")  # DeepLab trains its aux head
    model.eval()
    with torch.no_grad():
        assert set(model(x)) == {"out"}


def test_fcn_upsampling_starts_as_bilinear_interpolation():
    up = torch.nn.ConvTranspose2d(3, 3, 64, stride=32, padding=16, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(3, 64))
        x = torch.rand(1, 3, 4, 4)
        y = up(x)
    ref = F.interpolate(x, scale_factor=32, mode="bilinear", align_corners=False)
    assert y.shape == (1, 3, 128, 128)
    # equal away from the border, where the transposed convolution sees zero padding
    assert torch.allclose(y[..., 32:-32, 32:-32], ref[..., 32:-32, 32:-32], atol=1e-5)


def test_fcn32s_takes_vgg16_weights_with_fc_layers_as_convolutions(tmp_path, monkeypatch):
    from torchvision.models import vgg16

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(
        VislabError, match="fcn32s_vgg16: no weights 'imagenet'.*vgg16-397923af.pth"
    ):
        create_model("fcn32s_vgg16", num_classes=7, weights="imagenet")
    ref = vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(ref.state_dict(), path)
    model = create_model("fcn32s_vgg16", num_classes=7, weights=str(path))
    assert torch.equal(model.features[0].weight, ref.features[0].weight)
    assert torch.equal(model.fc6.weight.flatten(1), ref.classifier[0].weight)
    assert torch.equal(model.fc7.weight.flatten(1), ref.classifier[3].weight)


@pytest.mark.parametrize(
    "name, classifier, filename, model_key, source_key",
    [
        (
            "deeplabv3_resnet50",
            "resnet50",
            "resnet50-0676ba61.pth",
            "net.backbone.conv1.weight",
            "conv1.weight",
        ),
        (
            "lraspp_mobilenet_v3",
            "mobilenet_v3_large",
            "mobilenet_v3_large-8738ca79.pth",
            "net.backbone.0.0.weight",
            "features.0.0.weight",
        ),
    ],
)
def test_backbones_load_imagenet_weights_from_the_hub_cache(
    tmp_path, monkeypatch, name, classifier, filename, model_key, source_key
):
    import torchvision.models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = getattr(torchvision.models, classifier)(weights=None).state_dict()
    state[source_key] = torch.full_like(state[source_key], 0.25)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, cache / filename)
    model = create_model(name, num_classes=7, weights="imagenet")
    assert torch.all(model.state_dict()[model_key] == 0.25)


@pytest.mark.parametrize("encoder", ["timm/resnet34", "timm/tf_efficientnet_lite1"])
def test_fpn_uses_every_encoder_level_from_stride_4(encoder):
    model = create_model("fpn", num_classes=7, encoder=encoder, width=16)
    reductions = model.encoder.feature_info.reduction()
    assert [reductions[i] for i in model.levels] == [4, 8, 16, 32]
    model(torch.randn(1, 3, 64, 64))["out"].sum().backward()
    for lateral in model.decoder.lateral:  # the decoder uses all four levels
        assert lateral.weight.grad is not None and lateral.weight.grad.abs().sum() > 0


def test_unet_joins_every_level_and_deeplabv3plus_dilates_to_its_stride():
    unet = create_model("unet", num_classes=3, encoder="timm/resnet18")
    assert len(unet.levels) == 5 and len(unet.decoder.blocks) == 5  # 4 skips and a last block
    unet(torch.randn(1, 3, 64, 64))["out"].sum().backward()
    first = unet.encoder.conv1.weight.grad  # the stride-2 map's skip reaches the stem
    assert first is not None and first.abs().sum() > 0
    # an encoder of 4 maps (strides 4-32): 4 widths by default; a list of another length is
    # refused, not cut
    four = create_model("unet", num_classes=3, encoder="timm/convnext_atto")
    assert [b[0][0].out_channels for b in four.decoder.blocks] == [256, 128, 64, 32]
    with pytest.raises(VislabError, match=r"channels needs 4 widths, one per map of the enc"):
        create_model("unet", num_classes=3, encoder="timm/convnext_atto", channels=[8] * 5)
    for stride, rates in ((16, [6, 12, 18]), (8, [12, 24, 36])):
        net = create_model(
            "deeplabv3plus", num_classes=3, encoder="timm/resnet18", output_stride=stride
        )
        feats = net.encoder(torch.randn(1, 3, 64, 64))
        assert feats[net.levels[-1]].shape[-1] == 64 // stride
        assert [b[0].dilation[0] for b in net.decoder.aspp.branches[1:]] == rates
    with pytest.raises(VislabError, match="output_stride must be 8, 16 or 32"):
        create_model("deeplabv3plus", num_classes=3, encoder="timm/resnet18", output_stride=4)
    with pytest.raises(VislabError, match="encoder must be timm/NAME, got 'resnet18'"):
        create_model("unet", num_classes=3, encoder="resnet18")
