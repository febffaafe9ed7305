"""Optimizer and learning-rate schedule from the recipe's optim section."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from vislab.config import Config


def build_optimizer(cfg: Config, params: Iterable, total_steps: int) -> Any:
    """What a LightningModule's configure_optimizers returns."""
    o = cfg.optim
    if o.name == "sgd":
        opt = torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.schedule == "constant":
        return opt
    if o.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.trainer.epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=total_steps)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
