"""What ``vislab models --search TEXT`` lists: timm's and torchvision's classifiers whose
names hold TEXT, with their parameter count and the input size of their default weights.

Networks are built on PyTorch's meta device: shapes without memory or initialisation, so
counting the parameters of a few hundred networks takes seconds."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch

from vislab.models.registry import TIMM, TORCHVISION

LIMIT = 60  # rows printed; more matches ask for a narrower search


@dataclass(frozen=True)
class Entry:
    name: str  # as model.name takes it: timm/NAME or torchvision/NAME
    params: int | None  # with the library's default head (1,000 ImageNet classes)
    input_size: int | None  # the side its default weights were trained at; None without
    pretrained: bool


def _timm_names(text: str) -> list[str]:
    import timm

    return timm.list_models(f"*{text}*")


def _torchvision_names(text: str) -> list[str]:
    import torchvision.models as tvm

    return [n for n in tvm.list_models(module=tvm) if fnmatch.fnmatch(n, f"*{text}*")]


def _count(build) -> int | None:
    try:
        with torch.device("meta"):
            return sum(p.numel() for p in build().parameters())
    except Exception:  # a network that cannot be built on the meta device
        return None


def _timm_entry(name: str) -> Entry:
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    size = int(cfg.input_size[-1]) if cfg is not None else None
    pretrained = bool(cfg is not None and (cfg.hf_hub_id or cfg.url))
    return Entry(TIMM + name, _count(lambda: timm.create_model(name)), size, pretrained)


def _torchvision_entry(name: str) -> Entry:
    import torchvision.models as tvm

    default = tvm.get_model_weights(name).DEFAULT
    if default is None:
        return Entry(TORCHVISION + name, _count(lambda: tvm.get_model(name)), None, False)
    size = int(default.transforms().crop_size[0])
    return Entry(TORCHVISION + name, default.meta["num_params"], size, True)


def search(text: str) -> tuple[list[Entry], int]:
    """(the first LIMIT entries whose names hold text, case-insensitively; how many matched)."""
    text = text.lower()
    names = [(TIMM, n) for n in _timm_names(text)]
    names += [(TORCHVISION, n) for n in _torchvision_names(text)]
    rows = [_timm_entry(n) if lib == TIMM else _torchvision_entry(n) for lib, n in names[:LIMIT]]
    return rows, len(names)
