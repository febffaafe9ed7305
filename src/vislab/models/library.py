"""Classifiers of timm and torchvision by name: ``timm/NAME`` (any of timm's architectures) and
``torchvision/NAME`` (any torchvision classification builder), behind one wrapper.

The wrapper gives every network the interface the analysis needs, ``forward_features`` and
``forward_head(pre_logits=True)`` (the second-to-last layer), resizes inputs to ``input_size``
on the fly (32x32 photos meet the resolution the pretrained features work at), and may keep
the first ``frozen_stages`` stages at the weights they start from.

Built without weights (a checkpoint brings them), this module runs in the course's
environment too: Python 3.8, torch 1.12, torchvision 0.13, timm 0.6.7.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vislab.errors import VislabError
from vislab.models.registry import TIMM, TORCHVISION


class ImageClassifier(nn.Module):
    """net: a network with timm's interface (forward_features, forward_head). input_size:
    the side inputs are resized to (bilinear), None to take them as they come. frozen: the
    modules kept at their starting weights (no gradients, batch norm on stored statistics)."""

    def __init__(self, net: nn.Module, input_size: int | None, frozen: list[nn.Module]):
        super().__init__()
        self.net = net
        self.input_size = input_size
        # the width of forward_head(pre_logits=True): timm's head_hidden_size where its head
        # has a layer of its own (MobileNetV3: 288 maps, 1024 pre-logits), else num_features
        self.num_features = getattr(net, "head_hidden_size", None) or net.num_features
        for module in frozen:
            module.requires_grad_(False)
        self._frozen = frozen  # a plain list: no second registration in the state dict

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # the frozen stages' batch norm on its stored statistics, whatever set the modes
            # (Lightning restores each submodule's own mode after validation)
            for module in self._frozen:
                module.eval()
        s = self.input_size
        if s is not None and x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        return self.net.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(x, pre_logits=pre_logits)  # (B, features) or (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def stage_modules(net: nn.Module, stages: int, label: str) -> list[nn.Module]:
    """The modules of the stem and of the first ``stages`` of timm's feature levels
    (``net.feature_info``: for a ResNet level 1 is the stem, 2 is layer1; for an EfficientNet
    level 1 is the first block group). Modules are taken in registration order, which is the
    order timm's networks run them in; the direct parameters of the containers above (a ViT's
    position embedding) come with them."""
    levels = [d["module"] for d in getattr(net, "feature_info", None) or []]
    if not levels:
        raise VislabError(f"{label}: frozen_stages needs a network timm can split into stages")
    if isinstance(stages, bool) or not (isinstance(stages, int) and 0 <= stages <= len(levels)):
        raise VislabError(f"{label}: frozen_stages must be 0 to {len(levels)}, got {stages!r}")
    if stages == 0:
        return []
    last = levels[stages - 1]
    named = list(net.named_modules())
    inside = [i for i, (n, _) in enumerate(named) if n == last or n.startswith(last + ".")]
    end = max(inside)
    out = []
    for name, module in named[: end + 1]:
        above = not name or last.startswith(name + ".")  # a container of the last level
        if above and module._parameters:
            out.append(_DirectParameters(module))
        elif not above and (module._parameters or module._buffers):
            out.append(module)
    return out


class _DirectParameters:
    """The parameters a container holds itself (not its children's), frozen as a module is."""

    def __init__(self, module: nn.Module):
        self.module = module

    def requires_grad_(self, flag: bool) -> None:
        for p in self.module._parameters.values():
            if p is not None:
                p.requires_grad_(flag)

    def eval(self) -> None:
        pass  # parameters alone have no mode


def timm_classifier(
    arch: str,
    *,
    num_classes: int,
    weights: str | None = None,
    input_size: int | None = None,
    frozen_stages: int = 0,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
) -> nn.Module:
    """timm's arch with a head of num_classes; weights: see vislab.models.fetch."""
    import timm

    kwargs = {"num_classes": num_classes}
    if drop_rate is not None:
        kwargs["drop_rate"] = drop_rate  # dropout before the classifier
    if drop_path_rate is not None:
        kwargs["drop_path_rate"] = drop_path_rate  # stochastic depth, rising with the depth
    try:
        if weights is None:
            net = timm.create_model(arch, pretrained=False, **kwargs)
        else:
            from vislab.models.fetch import TimmWeights

            net = TimmWeights(arch, weights).create(**kwargs)
    except VislabError:
        raise
    except Exception as e:  # an architecture without dropout or stochastic depth, a value
        unknown = [k for k in ("drop_rate", "drop_path_rate") if f"argument '{k}'" in str(e)]
        if unknown:
            raise VislabError(
                f"model {TIMM}{arch} has no model.kwargs.{unknown[0]} (timm builds it without "
                "one); leave it out"
            ) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VislabError(f"model {TIMM}{arch} with model.kwargs {kwargs}: {first}") from None
    return ImageClassifier(net, input_size, stage_modules(net, frozen_stages, TIMM + arch))


class TorchvisionNet(nn.Module):
    """A torchvision classifier with timm's interface: its last linear layer becomes the
    head, and everything before it the features (for a ResNet the pooled 2048 numbers)."""

    def __init__(self, net: nn.Module, num_classes: int, label: str):
        super().__init__()
        linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise VislabError(f"{label}: no linear classifier to replace")
        *parents, leaf = linears[-1].split(".")
        owner = net.get_submodule(".".join(parents)) if parents else net
        last = getattr(owner, leaf)
        self.num_features = last.in_features
        setattr(owner, leaf, nn.Identity())
        self.body = net
        self.head = nn.Linear(last.in_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, num_features): the input of the last linear layer

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)


def torchvision_builder(name: str):
    """torchvision's classification builder of that name (torchvision 0.13 has no registry)."""
    import torchvision.models as tvm

    builder = getattr(tvm, name, None)
    known = callable(builder) and not isinstance(builder, type) and not name.startswith("_")
    if known and hasattr(tvm, "list_models"):  # torchvision 0.14 and later: its registry
        known = name in tvm.list_models(module=tvm)
    if not known:
        near = ""
        if hasattr(tvm, "list_models"):
            from vislab.models.registry import closest

            near = closest(name, tvm.list_models(module=tvm), TORCHVISION)
        raise VislabError(
            f"unknown model {TORCHVISION}{name}: torchvision has no such classifier{near}"
        )
    return builder


def torchvision_classifier(
    name: str,
    *,
    num_classes: int,
    weights: str | None = None,
    input_size: int | None = None,
) -> nn.Module:
    """torchvision's classifier name with a head of num_classes; weights: see fetch."""
    label = TORCHVISION + name
    net = torchvision_builder(name)(weights=None)
    if weights is not None:
        from vislab.models.fetch import TorchvisionWeights, torchvision_enum
        from vislab.models.weights import load_backbone

        source = TorchvisionWeights(torchvision_enum(name), weights, label)
        load_backbone(net, source.state_dict())
    return ImageClassifier(TorchvisionNet(net, num_classes, label), input_size, [])
