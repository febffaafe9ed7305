"""What classification and segmentation tasks share: the model, input preparation, the
optimizer, per-batch random generators and the checkpoint metadata."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from vislab.config import Config
from vislab.data.batches import normalize
from vislab.errors import VislabError
from vislab.infer.forward import as_input
from vislab.infer.meta import META_KEY, ModelMeta
from vislab.models import create_model
from vislab.train.optim import build_optimizer


class Task(L.LightningModule):
    def __init__(self, cfg: Config, meta: ModelMeta):
        super().__init__()
        self.cfg, self.meta = cfg, meta
        m = cfg.model
        self.model = create_model(m.name, num_classes=m.num_classes, **m.kwargs)
        if cfg.trainer.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(meta.mean), persistent=False)
        self.register_buffer("std", torch.tensor(meta.std), persistent=False)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float, channels_last when the recipe asks for it."""
        x = normalize(x, self.mean, self.std)
        return as_input(x) if self.cfg.trainer.channels_last else x

    def _generator(self, device: torch.device, batch_idx: int) -> torch.Generator:
        """One generator per (seed, rank, epoch, batch): a resumed run draws the same
        augmentations as an uninterrupted one."""
        key = (self.cfg.seed * 1009 + self.global_rank) * 100_003 + self.current_epoch
        return torch.Generator(device=device).manual_seed(key * 1_000_003 + batch_idx)

    def on_before_backward(self, loss: torch.Tensor) -> None:
        """A loss that is not finite stops the run before it reaches the weights: the run
        folder keeps the checkpoints of the epochs before."""
        if not torch.isfinite(loss):
            raise VislabError(
                f"the training loss is {loss.item()} at epoch {self.current_epoch + 1}, step "
                f"{self.global_step + 1}; the run stops, keeping the checkpoints of the epochs "
                "before (optim.lr too high?)"
            )

    def configure_optimizers(self):
        steps = int(self.trainer.estimated_stepping_batches)
        trainable = [p for p in self.model.parameters() if p.requires_grad]  # not frozen stages
        return build_optimizer(self.cfg, trainable, steps)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[META_KEY] = self.meta.to_dict()
