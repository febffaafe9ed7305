"""Classifiers for small images (32x32 in the course), trained from scratch; any input size.

Every classifier exposes ``forward_features(x)`` (the last feature map) and
``forward_head(feats, pre_logits=False)``; with ``pre_logits=True`` the head stops before its
last linear layer and returns the second-to-last layer's output, which the analysis embeds.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vislab.models.registry import register_model


class ModelA(nn.Module):
    """The report's Model A: 2 x [conv, BatchNorm, ReLU, max-pool], then 3 fully connected
    layers with 2 ReLUs. Defaults: 3x3 convolutions of 32 and 64 channels, fully connected
    4096 -> 512 -> 128 -> classes (about 2.2 M parameters, 1,600 img/s training on 2 cores).
    fc1 is sized for in_size x in_size inputs; other sizes are average-pooled to its grid."""

    def __init__(
        self,
        num_classes: int,
        in_size: int = 32,
        channels: tuple[int, int] = (32, 64),
        hidden: tuple[int, int] = (512, 128),
        batch_norm: bool = True,
    ):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            norm = nn.BatchNorm2d(cout) if batch_norm else nn.Identity()
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm),
                norm,
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        c1, c2 = channels
        self.features = nn.Sequential(block(3, c1), block(c1, c2))
        self.grid = in_size // 4  # the side of the feature map fc1 is sized for
        flat = c2 * self.grid**2
        self.fc1, self.fc2 = nn.Linear(flat, hidden[0]), nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], num_classes)
        self.num_features = hidden[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, c2, H/4, W/4)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if x.shape[-2:] != (self.grid, self.grid):
            # inputs of another size than in_size: pooled to fc1's grid. A functional call
            # taken only then, so at in_size the network (and its drawing) is as it was
            x = F.adaptive_avg_pool2d(x, self.grid)  # (B, c2, grid, grid)
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))  # (B, hidden[1]): the second-to-last layer
        return x if pre_logits else self.fc3(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)]
    layers.append(nn.ReLU(inplace=True))
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c), _conv_bn(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """ResNet-9 of the DAWNBench CIFAR-10 speed records (prep conv, three pooled stages, two
    residual blocks, global max-pool); ``width`` scales the channels (64 in the original)."""

    def __init__(self, num_classes: int, width: int = 64, scale: float = 0.125):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(3, w),
            _conv_bn(w, 2 * w, pool=True),
            _Residual(2 * w),
            _conv_bn(2 * w, 4 * w, pool=True),
            _conv_bn(4 * w, 8 * w, pool=True),
            _Residual(8 * w),
        )
        self.fc = nn.Linear(8 * w, num_classes, bias=False)
        self.scale = scale  # logits are scaled down, as in the original recipe
        self.num_features = 8 * w

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 8w, H/8, W/8)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.amax(x, dim=(2, 3))  # (B, 8w)
        return x if pre_logits else self.fc(x) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("classification")
def model_a(
    *,
    num_classes: int,
    in_size: int = 32,
    channels: tuple[int, int] = (32, 64),
    hidden: tuple[int, int] = (512, 128),
    batch_norm: bool = True,
) -> nn.Module:
    """Model A of the report: 2 conv blocks + 3 fully connected layers (from scratch).

    batch_norm=False drops BatchNorm (an ablation; also what makes multi-process CPU runs
    match a single process exactly, as CPU DDP has no synchronised batch norm)."""
    return ModelA(
        num_classes,
        in_size=in_size,
        channels=tuple(channels),
        hidden=tuple(hidden),
        batch_norm=batch_norm,
    )


@register_model("classification")
def resnet9(*, num_classes: int, width: int = 64) -> nn.Module:
    """ResNet-9 for small images, the CIFAR-10 speed-record network (from scratch)."""
    return ResNet9(num_classes, width=width)
