"""Optimizer and learning-rate schedule, from the recipe's optim keys."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from vislab.errors import VislabError


def build_optimizer(
    params: Iterable,
    total_steps: int,
    *,
    name: str,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    schedule: str,
    epochs: int,
) -> Any:
    """What a LightningModule's configure_optimizers returns: SGD or AdamW, with a constant
    rate, a cosine over epochs or a one-cycle over total_steps."""
    if name not in ("sgd", "adamw") or schedule not in ("constant", "cosine", "onecycle"):
        raise VislabError(
            f"optimizer {name!r} with schedule {schedule!r}: the optimizers are sgd and adamw, "
            "the schedules constant, cosine and onecycle"
        )
    if name == "sgd":
        opt = torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if schedule == "constant":
        return opt
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
