"""Pretrained weights from a local file or the torch hub cache, never from the network.

This machine (and many course machines) cannot download at run time, so ``weights`` is
either ``None`` (train from scratch), ``"imagenet"`` (the file torchvision would download,
looked up in ``$TORCH_HOME/hub/checkpoints``), or a path to a ``.pth`` state dict.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from vislab.errors import VislabError


def hub_checkpoint_path(url: str) -> Path:
    """Where torch.hub keeps the file of url (torch.hub.load_state_dict_from_url's cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def resolve_weights(weights: str | None, url: str, model: str) -> Path | None:
    """Path of the weights file to load, or None to train from scratch."""
    if weights is None:
        return None
    path = hub_checkpoint_path(url) if weights == "imagenet" else Path(weights)
    if not path.is_file():
        raise VislabError(
            f"{model}: ImageNet weights not found at {path}. Copy {os.path.basename(url)} "
            f"(from {url}) there, or pass model.kwargs.weights=/path/to/file.pth; "
            "to train from scratch instead, set model.kwargs.weights=null"
        )
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, pickle with code, not a torch file
        raise VislabError(f"cannot load weights from {path}: {e}") from None


def load_backbone(
    module: nn.Module,
    path: Path | dict[str, torch.Tensor],
    skip_prefixes: tuple[str, ...] = (),
    select_prefix: str = "",
) -> None:
    """Load a state dict (or the file at path) into module.

    Keys that start with skip_prefixes (heads whose shape depends on the number of classes)
    are ignored; with select_prefix, only keys starting with it are used, with it removed
    (``features.`` of an ImageNet classifier for a segmenter's backbone). Any other mismatch
    is an error."""
    state = read_state_dict(path) if isinstance(path, (Path, str)) else path
    if select_prefix:
        state = {
            k[len(select_prefix) :]: v for k, v in state.items() if k.startswith(select_prefix)
        }
    state = {k: v for k, v in state.items() if not k.startswith(skip_prefixes)}
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(skip_prefixes)]
    if missing or result.unexpected_keys:
        raise VislabError(
            f"{path} does not fit this model: missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
