"""State dicts read from files and loaded into parts of a model (where they come from:
vislab.models.fetch)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from vislab.errors import VislabError


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
