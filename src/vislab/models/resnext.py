"""torchvision's ResNeXt-101 64x4d (the report's Model B) for small images."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import ResNeXt101_64X4D_Weights, resnext101_64x4d

from vislab.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model
from vislab.models.weights import load_backbone, resolve_weights


class ResNeXtClassifier(nn.Module):
    """A torchvision ResNet-family network that resizes its input to input_size on the fly,
    so 32x32 images meet the resolution the ImageNet weights were trained at."""

    def __init__(self, net: nn.Module, num_classes: int, input_size: int):
        super().__init__()
        self.net = net
        self.input_size = input_size
        self.num_features = net.fc.in_features
        net.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return x  # (B, 2048, input_size/32, input_size/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.net.avgpool(x), 1)  # (B, 2048)
        return x if pre_logits else self.net.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("classification", name="resnext101_64x4d", mean=IMAGENET_MEAN, std=IMAGENET_STD)
def build_resnext101_64x4d(
    *, num_classes: int, weights: str | None = None, input_size: int = 224
) -> nn.Module:
    """torchvision ResNeXt-101 64x4d, the report's Model B (ImageNet weights if present)."""
    net = resnext101_64x4d(weights=None)
    path = resolve_weights(weights, ResNeXt101_64X4D_Weights.IMAGENET1K_V1.url, "resnext101_64x4d")
    if path is not None:
        load_backbone(net, path, skip_prefixes=("fc.",))
    return ResNeXtClassifier(net, num_classes, input_size)
