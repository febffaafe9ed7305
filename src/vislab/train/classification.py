"""Classification data module and Lightning task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy

from vislab.config import Config
from vislab.data.batches import (
    EpochSampler,
    TensorImageDataset,
    channel_stats,
    keep_batch,
    random_crop_flip,
)
from vislab.data.images import ImageSet, load_labeled
from vislab.train.task import Task


def resolve_path(root: str | None, sub: str | None) -> Path | None:
    """sub relative to the data root (absolute paths stay as they are)."""
    if sub is None:
        return None
    p = Path(sub)
    return p if p.is_absolute() or root is None else Path(root) / p


def _to_tensors(s: ImageSet) -> TensorImageDataset:
    images = torch.from_numpy(s.images).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    return TensorImageDataset(images, torch.from_numpy(s.labels))


class ClassificationData(L.LightningDataModule):
    """Decodes the train and val folders once into uint8 tensors (on construction)."""

    def __init__(self, cfg: Config):
        super().__init__()
        d, n = cfg.data, cfg.model.num_classes
        self.cfg = cfg
        train = load_labeled(
            resolve_path(d.root, d.train), n, image_size=d.image_size, max_per_class=d.max_per_class
        )
        val = load_labeled(
            resolve_path(d.root, d.val),
            n,
            resolve_path(d.root, d.val_labels),
            image_size=d.image_size,
        )
        if train.images.shape[1:] != val.images.shape[1:]:
            raise_size_mismatch(train, val)
        self.classes = train.classes
        self.image_size = list(train.images.shape[1:3])
        self.train_set, self.val_set = _to_tensors(train), _to_tensors(val)
        if d.mean is None or d.std is None:
            self.mean, self.std = channel_stats(self.train_set.images)
        else:
            self.mean, self.std = list(d.mean), list(d.std)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSampler(len(self.train_set), self.cfg.seed)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.data.batch_size,
            sampler=sampler,
            collate_fn=keep_batch,
            drop_last=False,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set, batch_size=self.cfg.data.eval_batch_size, collate_fn=keep_batch
        )


def raise_size_mismatch(train: ImageSet, val: ImageSet) -> None:
    from vislab.errors import VislabError

    raise VislabError(
        f"train images are {train.images.shape[2]}x{train.images.shape[1]} but val images are "
        f"{val.images.shape[2]}x{val.images.shape[1]} (set data.image_size to resize both)"
    )


class ClassificationTask(Task):
    """Model + cross-entropy + accuracy; augmentation runs on whole batches in training_step."""

    def __init__(self, cfg: Config, meta: dict[str, Any]):
        super().__init__(cfg, meta)
        self.train_acc = MulticlassAccuracy(cfg.model.num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(cfg.model.num_classes, average="micro")

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        x = self._input(x)
        d = self.cfg.data
        if d.crop_padding or d.hflip:
            g = self._generator(x.device, batch_idx)
            x = random_crop_flip(x, d.crop_padding, d.hflip, g)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.optim.label_smoothing)
        self.train_acc(logits, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(self._input(x))
        loss = F.cross_entropy(logits, y)
        self.val_acc(logits, y)
        self.log("val_loss", loss, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)
