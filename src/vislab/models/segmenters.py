"""torchvision's segmenters and VGG16-FCN32s, over torchvision's ImageNet backbones. Each
returns ``{"out": logits}`` at the input's resolution, plus ``"aux"`` (training only) for
networks with an auxiliary head, like torchvision's segmentation models. (Any timm encoder
under FPN, U-Net or DeepLabV3+: vislab.models.decoders.)"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16
from torchvision.models.segmentation import deeplabv3_resnet50, lraspp_mobilenet_v3_large

from vislab.models.registry import register_model
from vislab.models.weights import load_backbone


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """(C, C, size, size) weights that make a transposed convolution upsample bilinearly."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float32)
    filt = 1 - torch.abs(og - center) / factor
    kernel = filt[:, None] * filt[None, :]
    w = torch.zeros(channels, channels, size, size)
    w[range(channels), range(channels)] = kernel
    return w


class FCN32s(nn.Module):
    """VGG16-FCN32s: VGG16 convolutional features, fc6/fc7 as convolutions, a 1x1 score layer
    and x32 upsampling by a transposed convolution initialised to bilinear."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.features = vgg16(weights=None).features  # 13 convs, 5 max-pools: stride 32
        self.fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop = nn.Dropout2d(0.5)
        self.score = nn.Conv2d(4096, num_classes, 1)
        self.up = nn.ConvTranspose2d(
            num_classes, num_classes, 64, stride=32, padding=16, bias=False
        )
        with torch.no_grad():
            self.up.weight.copy_(bilinear_kernel(num_classes, 64))
            nn.init.zeros_(self.score.weight)
            nn.init.zeros_(self.score.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        # pad to a multiple of 32, else the x32 upsampling comes out smaller than the input
        x = F.pad(x, (0, -w % 32, 0, -h % 32))
        f = self.features(x)  # (B, 512, H/32, W/32)
        f = self.drop(torch.relu(self.fc6(f)))
        f = self.drop(torch.relu(self.fc7(f)))  # (B, 4096, H/32, W/32)
        out = self.up(self.score(f))  # (B, classes, H, W) of the padded input
        return {"out": out[..., :h, :w]}

    def load_vgg16(self, state: dict[str, torch.Tensor]) -> None:
        """ImageNet VGG16: conv weights as they are; fc6/fc7 reshaped into convolutions."""
        load_backbone(self.features, state, select_prefix="features.")
        with torch.no_grad():
            self.fc6.weight.copy_(state["classifier.0.weight"].view(4096, 512, 7, 7))
            self.fc6.bias.copy_(state["classifier.0.bias"])
            self.fc7.weight.copy_(state["classifier.3.weight"].view(4096, 4096, 1, 1))
            self.fc7.bias.copy_(state["classifier.3.bias"])


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model; drops the auxiliary output outside training."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x)
        return dict(out) if self.training else {"out": out["out"]}


def _backbone(builder: str, label: str):
    """kwargs -> the source of torchvision's ImageNet weights of the backbone builder (for
    ``imagenet`` IMAGENET1K_V1, the weights torchvision's own segmenters start from)."""

    def source(kwargs: dict):
        from vislab.models.fetch import TorchvisionWeights, torchvision_enum

        weights = kwargs.get("weights")
        if weights is None:
            return None
        return TorchvisionWeights(torchvision_enum(builder), weights, label, "IMAGENET1K_V1")

    return source


def _backbone_state(source, weights: str | None) -> dict[str, torch.Tensor] | None:
    return None if weights is None else source({"weights": weights}).state_dict()


_VGG16 = _backbone("vgg16", "fcn32s_vgg16")
_RESNET50 = _backbone("resnet50", "deeplabv3_resnet50")
_MOBILENET = _backbone("mobilenet_v3_large", "lraspp_mobilenet_v3")


@register_model("segmentation", weights=_VGG16)
def fcn32s_vgg16(*, num_classes: int, weights: str | None = None) -> nn.Module:
    """VGG16-FCN32s, the report's Model A for segmentation (VGG16 ImageNet weights if given)."""
    model = FCN32s(num_classes)
    state = _backbone_state(_VGG16, weights)
    if state is not None:
        model.load_vgg16(state)
    return model


@register_model("segmentation", name="deeplabv3_resnet50", weights=_RESNET50)
def build_deeplabv3_resnet50(*, num_classes: int, weights: str | None = None) -> nn.Module:
    """torchvision DeepLabv3-ResNet50 with its auxiliary head, the report's Model B."""
    net = deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=True
    )
    state = _backbone_state(_RESNET50, weights)
    if state is not None:
        load_backbone(net.backbone, state, skip_prefixes=("fc.",))
    return TorchvisionSegmenter(net)


@register_model("segmentation", weights=_MOBILENET)
def lraspp_mobilenet_v3(
    *, num_classes: int, weights: str | None = None, bn_momentum: float | None = None
) -> nn.Module:
    """torchvision LR-ASPP MobileNetV3-Large, light enough to train on 2 CPU cores."""
    net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
    state = _backbone_state(_MOBILENET, weights)
    if state is not None:
        load_backbone(net.backbone, state, select_prefix="features.")
    if bn_momentum is not None:
        # torchvision's MobileNetV3 uses BatchNorm momentum 0.01: its running statistics need
        # thousands of steps, so short runs evaluate with stale statistics. 0.1 suits them.
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = bn_momentum
    return TorchvisionSegmenter(net)
