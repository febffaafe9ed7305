"""Classification data module and Lightning task."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from vislab.config import Config
from vislab.data.augment import auto_augment, mix_batch, random_crop_flip, random_erasing
from vislab.data.batches import TensorImageDataset
from vislab.data.images import load_labeled
from vislab.errors import VislabError
from vislab.infer.meta import ModelMeta
from vislab.train.datamodule import DecodedData
from vislab.train.task import Task


class ClassificationData(DecodedData):
    """Decodes the train and val folders once into uint8 tensors (on construction)."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        d = cfg.data.located()
        # the classes are the data's (data.classes, when given, names them): the run's head
        # follows them, and the validation set is numbered as the training set
        store = {"store": d.store, "processes": self.processes()}
        train = load_labeled(
            d.resolve(d.train),
            image_size=d.image_size,
            max_per_class=d.max_per_class,
            classes=d.classes,
            complete=True,
            **store,
        )
        val = load_labeled(
            d.resolve(d.val), d.resolve(d.val_labels), d.image_size, classes=train.classes, **store
        )
        if train.images.shape[1:] != val.images.shape[1:]:
            raise VislabError(
                f"train images are {train.images.shape[2]}x{train.images.shape[1]} but val "
                f"images are {val.images.shape[2]}x{val.images.shape[1]} "
                "(set data.image_size to resize both)"
            )
        h, w = train.images.shape[1:3]
        if d.crop_padding >= min(h, w):  # reflect padding needs fewer pixels than the image
            raise VislabError(
                f"config key data.crop_padding: {d.crop_padding} must be below the images' {w}x{h}"
            )
        self.hold(
            TensorImageDataset(train.images, train.labels),
            TensorImageDataset(val.images, val.labels),
            train.classes,
        )


class ClassificationTask(Task):
    """Model + cross-entropy + accuracy; augmentation runs on whole batches in training_step:
    the auto-augment policy on the uint8 images, then crops and flips, random erasing and
    MixUp / CutMix on the normalised ones."""

    def __init__(
        self,
        meta: ModelMeta,
        *,
        crop_padding: int = 0,
        hflip: bool = False,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        auto_augment: str | None = None,
        random_erasing: float = 0.0,
        teacher: str | None = None,
        distill_weight: float = 0.5,
        distill_temperature: float = 1.0,
        **common: Any,
    ):
        super().__init__(meta, **common)
        self.save_hyperparameters(ignore=["meta"])
        self.train_acc = MulticlassAccuracy(meta.num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(meta.num_classes, average="micro")

    @classmethod
    def hyperparameters(cls, cfg: Config) -> dict[str, Any]:
        d = cfg.data
        return dict(
            super().hyperparameters(cfg),
            crop_padding=d.crop_padding,
            hflip=d.hflip,
            mixup=d.mixup,
            cutmix=d.cutmix,
            auto_augment=d.auto_augment,
            random_erasing=d.random_erasing,
            teacher=cfg.model.teacher,
            distill_weight=cfg.optim.distill_weight,
            distill_temperature=cfg.optim.distill_temperature,
        )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, *soft = batch  # soft: the teacher's log-probabilities, with model.teacher
        h = self.hparams
        g = self._generator(batch_idx)
        if h.auto_augment:
            x = auto_augment(x, h.auto_augment, g)
        x = self._input(x)
        if h.crop_padding or h.hflip:
            x = random_crop_flip(x, h.crop_padding, h.hflip, g)
        if h.random_erasing:
            x = random_erasing(x, h.random_erasing, g)
        targets = [(1.0, y, soft[0] if soft else None)]  # (share, labels, soft targets)
        if h.mixup or h.cutmix:
            x, order, lam = mix_batch(x, h.mixup, h.cutmix, g)
            mixed = (1 - lam, y[order], soft[0][order] if soft else None)
            targets = [(lam, y, targets[0][2]), mixed]
            y = y if lam >= 0.5 else y[order]  # train accuracy: against the larger share
        logits = self.model(x)
        loss = sum(share * self._loss(logits, labels, soft) for share, labels, soft in targets)
        self.train_acc(logits, y)
        self.log(
            "train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True
        )
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _loss(
        self, logits: torch.Tensor, labels: torch.Tensor, log_probs: torch.Tensor | None
    ) -> torch.Tensor:
        """Cross-entropy with the labels (label smoothing as set), and with a teacher's
        probabilities where its log-probabilities are given, weighted (1 - distill_weight) :
        distill_weight; at temperature T both sides are softened (logits / T, log-probabilities
        / T) and the teacher's term is scaled by T^2, its gradients' size at T = 1."""
        h = self.hparams
        hard = F.cross_entropy(logits, labels, label_smoothing=h.label_smoothing)
        if log_probs is None:
            return hard
        w, t = h.distill_weight, h.distill_temperature
        soft = (log_probs / t).softmax(1)
        return (1 - w) * hard + w * t**2 * F.cross_entropy(logits / t, soft)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(self._input(x))
        loss = F.cross_entropy(logits, y)
        self.val_acc(logits, y)
        self.log("val_loss", loss, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)
