"""What classification and segmentation tasks share: the model, input preparation, the
optimizer, per-batch random generators and the checkpoint metadata.

A task takes its hyperparameters as plain arguments, saved in the checkpoint's
``hyper_parameters`` as Lightning does, so it is built without a vislab recipe
(``SegmentationTask(meta, model="lraspp_mobilenet_v3", lr=1e-3)``); ``from_config`` maps a
recipe onto them."""

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
    """meta: the checkpoint metadata, which holds what the data decided (the number of classes,
    the normalisation, the data set spec); model and model_kwargs: the network, as
    vislab.models.create_model builds it; optimizer .. schedule: as the recipe's optim keys;
    epochs: the length of the cosine schedule; seed: of the augmentations' generators."""

    def __init__(
        self,
        meta: ModelMeta,
        *,
        model: str,
        model_kwargs: dict[str, Any] | None = None,
        optimizer: str = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 1e-4,
        schedule: str = "constant",
        epochs: int = 1,
        label_smoothing: float = 0.0,
        seed: int = 0,
        channels_last: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["meta"])
        self.meta = meta
        self.model = create_model(model, num_classes=meta.num_classes, **(model_kwargs or {}))
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(meta.mean), persistent=False)
        self.register_buffer("std", torch.tensor(meta.std), persistent=False)

    @classmethod
    def hyperparameters(cls, cfg: Config) -> dict[str, Any]:
        """The arguments a recipe gives the task (subclasses add their own)."""
        o = cfg.optim
        return dict(
            model=cfg.model.name,
            model_kwargs=dict(cfg.model.kwargs),
            optimizer=o.name,
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov,
            weight_decay=o.weight_decay,
            schedule=o.schedule,
            epochs=cfg.trainer.epochs,
            label_smoothing=o.label_smoothing,
            seed=cfg.seed,
            channels_last=cfg.trainer.channels_last,
        )

    @classmethod
    def from_config(cls, cfg: Config, meta: ModelMeta) -> Task:
        return cls(meta, **cls.hyperparameters(cfg))

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float, channels_last when asked for."""
        x = normalize(x, self.mean, self.std)
        return as_input(x) if self.hparams.channels_last else x

    def _generator(self, batch_idx: int) -> torch.Generator:
        """One CPU generator per (seed, rank, epoch, batch), whatever the batch's device: a
        resumed run draws the same augmentations as an uninterrupted one, a GPU run the same
        as a CPU run."""
        key = (self.hparams.seed * 1009 + self.global_rank) * 100_003 + self.current_epoch
        return torch.Generator().manual_seed(key * 1_000_003 + batch_idx)

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
        h = self.hparams
        return build_optimizer(
            trainable,
            steps,
            name=h.optimizer,
            lr=h.lr,
            momentum=h.momentum,
            nesterov=h.nesterov,
            weight_decay=h.weight_decay,
            schedule=h.schedule,
            epochs=h.epochs,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[META_KEY] = self.meta.to_dict()
