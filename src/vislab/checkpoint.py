"""Reading vislab checkpoints (Lightning's best/last, or weights-only snapshots) for inference.

Every checkpoint is a plain dict loadable with ``torch.load(..., weights_only=True)``; the
``"vislab"`` entry says which model to build and how its inputs were preprocessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from vislab.errors import VislabError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise VislabError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise VislabError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(ckpt, dict) or "vislab" not in ckpt or "state_dict" not in ckpt:
        raise VislabError(f"{path} is not a vislab checkpoint (no 'vislab' metadata)")
    return ckpt


def load_model(path: str | Path, task: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the checkpoint's model with its weights, in eval mode; returns (model, meta).

    meta["epoch"] is the 1-based epoch the weights are from: snapshots store it so, Lightning
    stores the 0-based index of the epoch it finished."""
    from vislab.models import create_model

    ckpt = read_checkpoint(path)
    lightning = "pytorch-lightning_version" in ckpt
    meta = dict(ckpt["vislab"], epoch=int(ckpt.get("epoch", -1)) + (1 if lightning else 0))
    if task is not None and meta["task"] != task:
        raise VislabError(f"{path} is a {meta['task']} checkpoint, not {task}")
    kwargs = {k: v for k, v in meta["model_kwargs"].items() if k != "weights"}
    model = create_model(meta["model"], num_classes=meta["num_classes"], **kwargs)
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise VislabError(f"{path}: weights do not fit {meta['model']}: {e}") from None
    return model.eval(), meta
