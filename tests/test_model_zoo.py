"""The contract every classifier keeps, over a sample of each family (vislab's own, timm's,
torchvision's): it builds with a head of the asked size, takes any input size, and its
``forward_head(pre_logits=True)`` is the input of its last linear layer; freezing the first
stages of a timm network keeps their weights and batch-norm statistics through a training
step while the rest moves. And ``vislab models --search`` finds them by name."""

from __future__ import annotations

import pytest
import torch

from vislab.cli import main
from vislab.errors import VislabError
from vislab.models import create_model, model_task

FAMILIES = {
    "model_a": {},
    "resnet9": {"width": 8},
    "timm/resnet18": {"input_size": 64},
    "timm/tf_efficientnet_lite0": {"input_size": 64},
    "timm/convnext_atto": {"input_size": 64},
    "timm/mobilenetv3_small_050": {},
    "timm/regnetx_002": {},
    "timm/vit_tiny_patch16_224": {"input_size": 224},
    "torchvision/resnet18": {},
    "torchvision/mobilenet_v3_small": {"input_size": 64},
    "torchvision/efficientnet_b0": {},
    "torchvision/shufflenet_v2_x0_5": {},
    "torchvision/convnext_tiny": {"input_size": 64},
}


@pytest.mark.parametrize("name", FAMILIES)
def test_build_forward_and_pre_logits(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **FAMILIES[name]).eval()
    assert model_task(name) == "classification"
    x = torch.randn(2, 3, 40, 48)  # not square, not the size any of them expects
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model(x)
    assert logits.shape == (2, 5) and pre.shape == (2, model.num_features)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert last.out_features == 5
    expected = last(pre) * getattr(model, "scale", 1.0)
    assert torch.allclose(logits, expected, atol=1e-4)


@pytest.mark.parametrize(
    "name, stages, frozen, moving",
    [
        ("timm/resnet18", 2, ["conv1.", "bn1.", "layer1."], "layer2.0.downsample.0.weight"),
        (
            "timm/tf_efficientnet_lite0",
            3,
            ["conv_stem.", "bn1.", "blocks.2."],
            "blocks.3.0.conv_pw.weight",
        ),
        ("timm/convnext_atto", 1, ["stem.", "stages.0."], "stages.1.blocks.0.conv_dw.weight"),
    ],
)
def test_frozen_stages_keep_their_tensors_through_a_step(name, stages, frozen, moving):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, input_size=64, frozen_stages=stages)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4))
    loss.backward()
    opt.step()
    after = model.net.state_dict()
    kept = [k for k in before if k.startswith(tuple(frozen))]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)  # weights and BN stats
    assert not torch.equal(before[moving], after[moving])


def test_frozen_stages_out_of_range_and_without_stages_are_one_line():
    with pytest.raises(VislabError, match="frozen_stages must be 0 to 5, got 6"):
        create_model("timm/resnet18", num_classes=5, frozen_stages=6)
    with pytest.raises(VislabError, match="unexpected keyword argument 'frozen_stages'"):
        create_model("torchvision/resnet18", num_classes=5, frozen_stages=1)
    with pytest.raises(VislabError, match="no linear classifier"):
        create_model("torchvision/squeezenet1_0", num_classes=5)


def test_names_timm_bare_and_unknown():
    assert create_model("convnext_atto", num_classes=3).net.num_classes == 3  # bare timm name
    for name, said in [
        ("timm/nosuch_net", "timm has no model 'nosuch_net'"),
        ("torchvision/nosuch_net", "torchvision has no such classifier"),
        ("torchvision/ResNet", "torchvision has no such classifier"),
        ("nosuch_net", "unknown model 'nosuch_net'; vislab's: "),
    ]:
        with pytest.raises(VislabError, match=said):
            create_model(name, num_classes=3)
    with pytest.raises(VislabError, match="timm has no weights 'no_such_tag'; its tags: a1_in1k"):
        create_model("timm/resnet18", num_classes=3, weights="no_such_tag")
    with pytest.raises(
        VislabError, match="torchvision has no weights 'V9'; its weights: IMAGENET1K_V1"
    ):
        create_model("torchvision/resnet18", num_classes=3, weights="V9")


def test_models_search_lists_both_libraries_with_sizes(capsys):
    assert main(["models", "--search", "convnext_t"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in out[1:]}
    assert rows["timm/convnext_tiny"] == ["28,589,128", "224", "yes"]
    assert rows["torchvision/convnext_tiny"] == ["28,589,128", "224", "yes"]
    assert main(["models", "--search", "zz_none"]) == 2
    assert "no timm or torchvision classifier has 'zz_none'" in capsys.readouterr().err


def test_models_lists_vislabs_own_and_shows_a_decoder_over_an_encoder(capsys):
    assert main(["models", "--task", "segmentation"]) == 0
    out = capsys.readouterr().out
    assert "unet " in out and "counted over timm/resnet18" in out and "model_a" not in out
    assert main(["models", "unet"]) == 2
    assert "unet is a decoder: vislab models unet --encoder timm/NAME" in capsys.readouterr().err
    assert main(["models", "deeplabv3plus", "--encoder", "timm/resnet18", "--size", "64"]) == 0
    table = capsys.readouterr().out
    assert "decoder.aspp" in table and "[7, 64, 64]" in table
