"""Segmenters for the land-cover tiles. Each returns ``{"out": logits}`` at the input's
resolution, plus ``"aux"`` (training only) for networks with an auxiliary head, like
torchvision's segmentation models."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import (
    MobileNet_V3_Large_Weights,
    ResNet18_Weights,
    ResNet34_Weights,
    ResNet50_Weights,
    VGG16_Weights,
    resnet18,
    resnet34,
    vgg16,
)
from torchvision.models.segmentation import deeplabv3_resnet50, lraspp_mobilenet_v3_large

from vislab.errors import VislabError
from vislab.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model
from vislab.models.weights import load_backbone, read_state_dict, resolve_weights


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

    def load_vgg16(self, path) -> None:
        """ImageNet VGG16: conv weights as they are; fc6/fc7 reshaped into convolutions."""
        state = read_state_dict(path)
        load_backbone(self.features, state, select_prefix="features.")
        with torch.no_grad():
            self.fc6.weight.copy_(state["classifier.0.weight"].view(4096, 512, 7, 7))
            self.fc6.bias.copy_(state["classifier.0.bias"])
            self.fc7.weight.copy_(state["classifier.3.weight"].view(4096, 4096, 1, 1))
            self.fc7.bias.copy_(state["classifier.3.bias"])


class FPNDecoder(nn.Module):
    """A feature-pyramid decoder: each encoder level is projected to ``width`` channels, added
    to the upsampled coarser level and smoothed by a 3x3 convolution; the smoothed levels are
    summed at the finest one, classified by a 1x1 convolution and upsampled to the input."""

    def __init__(self, channels: list[int], num_classes: int, width: int):
        super().__init__()
        self.lateral = nn.ModuleList([nn.Conv2d(c, width, 1) for c in channels])
        self.smooth = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(width, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                )
                for _ in channels
            ]
        )
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """feats: the encoder's maps, finest first; returns (B, classes, *size) logits."""
        p = self.lateral[-1](feats[-1])
        out = self.smooth[-1](p)
        for i in range(len(feats) - 2, -1, -1):
            p = self.lateral[i](feats[i]) + F.interpolate(p, size=feats[i].shape[-2:])
            out = self.smooth[i](p) + F.interpolate(
                out, size=p.shape[-2:], mode="bilinear", align_corners=False
            )
        logits = self.classifier(out)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class FPNResNet(nn.Module):
    """A ResNet encoder (strides 4, 8, 16, 32) with a feature-pyramid decoder at stride 4."""

    def __init__(self, encoder: nn.Module, channels: list[int], num_classes: int, width: int):
        super().__init__()
        e = encoder
        self.stem = nn.Sequential(e.conv1, e.bn1, e.relu, e.maxpool)
        self.stages = nn.ModuleList([e.layer1, e.layer2, e.layer3, e.layer4])
        self.decoder = FPNDecoder(channels, num_classes, width)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.stem(x)
        feats = []
        for stage in self.stages:
            f = stage(f)
            feats.append(f)
        return {"out": self.decoder(feats, x.shape[-2:])}


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model; drops the auxiliary output outside training."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x)
        return dict(out) if self.training else {"out": out["out"]}


@register_model("segmentation", mean=IMAGENET_MEAN, std=IMAGENET_STD)
def fcn32s_vgg16(*, num_classes: int, weights: str | None = None) -> nn.Module:
    """VGG16-FCN32s, the report's Model A for segmentation (VGG16 ImageNet weights if given)."""
    model = FCN32s(num_classes)
    path = resolve_weights(weights, VGG16_Weights.IMAGENET1K_V1.url, "fcn32s_vgg16")
    if path is not None:
        model.load_vgg16(path)
    return model


@register_model("segmentation", name="deeplabv3_resnet50", mean=IMAGENET_MEAN, std=IMAGENET_STD)
def build_deeplabv3_resnet50(*, num_classes: int, weights: str | None = None) -> nn.Module:
    """torchvision DeepLabv3-ResNet50 with its auxiliary head, the report's Model B."""
    net = deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=True
    )
    path = resolve_weights(weights, ResNet50_Weights.IMAGENET1K_V1.url, "deeplabv3_resnet50")
    if path is not None:
        load_backbone(net.backbone, path, skip_prefixes=("fc.",))
    return TorchvisionSegmenter(net)


@register_model("segmentation", mean=IMAGENET_MEAN, std=IMAGENET_STD)
def lraspp_mobilenet_v3(
    *, num_classes: int, weights: str | None = None, bn_momentum: float | None = None
) -> nn.Module:
    """torchvision LR-ASPP MobileNetV3-Large, light enough to train on 2 CPU cores."""
    net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
    url = MobileNet_V3_Large_Weights.IMAGENET1K_V1.url
    path = resolve_weights(weights, url, "lraspp_mobilenet_v3")
    if path is not None:
        load_backbone(net.backbone, path, select_prefix="features.")
    if bn_momentum is not None:
        # torchvision's MobileNetV3 uses BatchNorm momentum 0.01: its running statistics need
        # thousands of steps, so short runs evaluate with stale statistics. 0.1 suits them.
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = bn_momentum
    return TorchvisionSegmenter(net)


@register_model("segmentation", mean=IMAGENET_MEAN, std=IMAGENET_STD)
def fpn_resnet(
    *, num_classes: int, depth: int = 18, width: int = 128, weights: str | None = None
) -> nn.Module:
    """ResNet-18/34 encoder + feature-pyramid decoder at stride 4 (for ImageNet weights)."""
    builders = {
        18: (resnet18, ResNet18_Weights.IMAGENET1K_V1.url),
        34: (resnet34, ResNet34_Weights.IMAGENET1K_V1.url),
    }
    if depth not in builders:
        raise VislabError(f"fpn_resnet: depth must be 18 or 34, got {depth}")
    build, url = builders[depth]
    encoder = build(weights=None)
    path = resolve_weights(weights, url, f"fpn_resnet{depth}")
    if path is not None:
        load_backbone(encoder, path)
    return FPNResNet(encoder, [64, 128, 256, 512], num_classes, width)
