"""Segmenters as encoder x decoder: any timm network that gives feature maps
(``features_only``) under a feature pyramid (``fpn``), a U-Net (``unet``) or DeepLabV3+
(``deeplabv3plus``) decoder, written here (each is short) rather than taken from
segmentation_models_pytorch, so that a model trained here runs in the course's environment
(torch 1.12, timm 0.6.7 and nothing else) as its submission must.

Each returns ``{"out": logits}`` at the input's resolution.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vislab.errors import VislabError
from vislab.models.registry import TIMM, register_model


def conv_bn_relu(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class FPNDecoder(nn.Module):
    """A feature-pyramid decoder: each encoder level is projected to ``width`` channels, added
    to the upsampled coarser level and smoothed by a 3x3 convolution; the smoothed levels are
    summed at the finest one, classified by a 1x1 convolution and upsampled to the input."""

    def __init__(self, channels: list[int], num_classes: int, width: int):
        super().__init__()
        self.lateral = nn.ModuleList([nn.Conv2d(c, width, 1) for c in channels])
        self.smooth = nn.ModuleList([conv_bn_relu(width, width) for _ in channels])
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """feats: the encoder's maps, finest first; returns (B, classes, *size) logits."""
        p = self.lateral[-1](feats[-1])
        out = self.smooth[-1](p)
        for i in range(len(feats) - 2, -1, -1):
            p = self.lateral[i](feats[i]) + F.interpolate(p, size=feats[i].shape[-2:])
            out = self.smooth[i](p) + _up(out, p.shape[-2:])
        return _up(self.classifier(out), size)


UNET_WIDTHS = (256, 128, 64, 32, 16)  # the U-Net decoder's widths by default, coarse to fine


class UNetDecoder(nn.Module):
    """U-Net's decoder: from the coarsest map up, upsample x2, concatenate the encoder's map of
    that size, two 3x3 convolutions; one more block without a skip when the finest map is
    coarser than the input; a 3x3 convolution classifies."""

    def __init__(self, channels: list[int], num_classes: int, widths: list[int]):
        super().__init__()
        skips = channels[-2::-1]  # the maps joined on the way up, coarse to fine
        need = len(skips) + 1
        if len(widths) != need:
            raise VislabError(
                f"unet: model.kwargs.channels needs {need} widths, one per map of the "
                f"encoder (coarse to fine), got {list(widths)}"
            )
        ins = [channels[-1], *widths[: need - 1]]
        self.blocks = nn.ModuleList(
            nn.Sequential(conv_bn_relu(cin + skip, w), conv_bn_relu(w, w))
            for cin, skip, w in zip(ins, [*skips, 0], widths[:need])
        )
        self.classifier = nn.Conv2d(widths[need - 1], num_classes, 3, padding=1)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        x = feats[-1]
        for block, skip in zip(self.blocks, [*feats[-2::-1], None]):
            if skip is not None:
                x = torch.cat([F.interpolate(x, size=skip.shape[-2:]), skip], 1)
            else:  # the last block: to twice the finest map, at most the input's size
                h, w = x.shape[-2:]
                x = F.interpolate(x, size=(min(2 * h, size[0]), min(2 * w, size[1])))
            x = block(x)
        return _up(self.classifier(x), size)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 convolution, three dilated 3x3 convolutions and
    the image's mean, concatenated and projected to ``width`` channels."""

    def __init__(self, cin: int, width: int, rates: tuple[int, int, int]):
        super().__init__()
        branches = [conv_bn_relu(cin, width, 1)]
        branches += [conv_bn_relu(cin, width, 3, r) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, width, 1, bias=False), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(conv_bn_relu(5 * width, width, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+: ASPP over the coarsest map, upsampled to the stride-4 map, joined with its
    48-channel projection, two 3x3 convolutions, a 1x1 classifier."""

    def __init__(self, channels: list[int], num_classes: int, width: int, rates):
        super().__init__()
        self.aspp = ASPP(channels[-1], width, tuple(rates))
        self.low = conv_bn_relu(channels[0], 48, 1)
        self.fuse = nn.Sequential(conv_bn_relu(width + 48, width), conv_bn_relu(width, width))
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        low, high = feats[0], feats[-1]  # stride 4, the coarsest
        x = torch.cat([_up(self.aspp(high), low.shape[-2:]), self.low(low)], 1)
        return _up(self.classifier(self.fuse(x)), size)


class EncoderDecoder(nn.Module):
    """encoder: a timm features_only network; levels: which of its maps the decoder takes
    (finest first)."""

    def __init__(self, encoder: nn.Module, levels: list[int], decoder: nn.Module):
        super().__init__()
        self.encoder, self.levels, self.decoder = encoder, levels, decoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        return {"out": self.decoder([feats[i] for i in self.levels], x.shape[-2:])}


def check_encoder(encoder: object) -> str:
    """The timm architecture that model.kwargs.encoder (``timm/NAME``) names; another value is
    one line, with the closest of timm's names."""
    import timm

    from vislab.models.registry import closest

    if not isinstance(encoder, str) or not encoder.startswith(TIMM):
        near = closest(encoder, timm.list_models(), TIMM) if isinstance(encoder, str) else ""
        raise VislabError(f"model.kwargs.encoder must be timm/NAME, got {encoder!r}{near}")
    arch = encoder[len(TIMM) :]
    if not timm.is_model(arch):
        near = closest(arch, timm.list_models(), TIMM)
        raise VislabError(f"model.kwargs.encoder: timm has no model {arch!r}{near}")
    return arch


def timm_encoder(encoder: str, weights: str | None, **kwargs) -> nn.Module:
    """timm's ``features_only`` network that ``encoder`` (``timm/NAME``) names."""
    import timm

    arch = check_encoder(encoder)
    try:
        if weights is None:
            return timm.create_model(arch, pretrained=False, features_only=True, **kwargs)
        from vislab.models.fetch import TimmWeights

        return TimmWeights(arch, weights).create(features_only=True, **kwargs)
    except VislabError:
        raise
    except Exception as e:  # no feature maps, no dilation
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VislabError(f"encoder {encoder} cannot give feature maps {kwargs}: {first}") from None


def _levels(encoder: nn.Module, finest: int) -> tuple[list[int], list[int]]:
    """(indices, channels) of the encoder's maps at stride finest and coarser."""
    reductions, channels = encoder.feature_info.reduction(), encoder.feature_info.channels()
    keep = [i for i, r in enumerate(reductions) if r >= finest]
    return keep, [channels[i] for i in keep]


def _weights_of(kwargs: dict):
    from vislab.models.fetch import TimmWeights

    enc = kwargs.get("encoder")
    if kwargs.get("weights") is None or not isinstance(enc, str) or not enc.startswith(TIMM):
        return None
    return TimmWeights(enc[len(TIMM) :], kwargs["weights"])


@register_model("segmentation", weights=_weights_of)
def fpn(*, num_classes: int, encoder: str, weights: str | None = None, width: int = 128):
    """Feature-pyramid decoder at stride 4 over a timm encoder (model.kwargs.encoder)."""
    net = timm_encoder(encoder, weights)
    levels, channels = _levels(net, 4)
    return EncoderDecoder(net, levels, FPNDecoder(channels, num_classes, width))


@register_model("segmentation", weights=_weights_of)
def unet(
    *,
    num_classes: int,
    encoder: str,
    weights: str | None = None,
    channels: tuple[int, ...] | None = None,
):
    """U-Net decoder over every map of a timm encoder (model.kwargs.encoder); channels: its
    blocks' widths, coarse to fine, one per map (default: the first of 256, 128, 64, 32, 16)."""
    net = timm_encoder(encoder, weights)
    levels, cins = _levels(net, 1)
    widths = UNET_WIDTHS[: len(cins)] if channels is None else channels
    return EncoderDecoder(net, levels, UNetDecoder(cins, num_classes, list(widths)))


@register_model("segmentation", weights=_weights_of)
def deeplabv3plus(
    *,
    num_classes: int,
    encoder: str,
    weights: str | None = None,
    width: int = 256,
    output_stride: int = 16,
):
    """DeepLabV3+ (ASPP, stride-4 skip) over a timm encoder (model.kwargs.encoder)."""
    if output_stride not in (8, 16, 32):
        raise VislabError(f"deeplabv3plus: output_stride must be 8, 16 or 32, got {output_stride}")
    net = timm_encoder(encoder, weights, output_stride=output_stride)
    levels, cins = _levels(net, 4)
    rates = [r * 16 // output_stride for r in (6, 12, 18)]  # the paper's at stride 16
    # the maps at stride 4 and the coarsest (dilated maps repeat the coarsest stride)
    levels, cins = [levels[0], levels[-1]], [cins[0], cins[-1]]
    return EncoderDecoder(net, levels, DeepLabV3PlusDecoder(cins, num_classes, width, rates))
