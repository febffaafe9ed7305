"""Segmentation data module and Lightning task (course mIoU as the validation metric)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassConfusionMatrix

from vislab.config import Config
from vislab.course.landcover import CLASSES, NUM_SCORED
from vislab.data.batches import TensorImageDataset, random_tile_augment
from vislab.data.tiles import TileSet, balanced_weights, load_tiles, pixel_counts
from vislab.errors import VislabError
from vislab.infer.forward import segment_logits, to_nchw
from vislab.infer.meta import ModelMeta
from vislab.metrics.miou import scores
from vislab.train.datamodule import InMemoryData
from vislab.train.lovasz import lovasz_softmax
from vislab.train.task import Task


def _to_dataset(t: TileSet) -> TensorImageDataset:
    """Images and masks stay uint8 (masks become int64 per batch): 2,000 full-size course
    masks take 0.5 GB as uint8, 4.2 GB as int64."""
    images = to_nchw(t.images)
    return TensorImageDataset(images, torch.from_numpy(t.masks))


class SegmentationData(InMemoryData):
    """Train tiles at data.image_size (downscaled for the CPU when set), val tiles at full size:
    the course scores masks at their own resolution. class_weights: optim.class_weights with
    "balanced" worked out from the train masks."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        d = cfg.data
        train = load_tiles(d.resolve(d.train), size=d.image_size, limit=d.limit)
        val = load_tiles(d.resolve(d.val), size=None, limit=d.limit)
        h, w = train.images.shape[1:3]
        if d.crop_size is not None and d.crop_size > min(h, w):
            raise VislabError(
                f"config key data.crop_size: {d.crop_size} is larger than the training tiles "
                f"({w}x{h}{' after data.image_size' if d.image_size else ''})"
            )
        self.hold(_to_dataset(train), _to_dataset(val), list(CLASSES))
        w = cfg.optim.class_weights
        if w == "balanced":
            w = balanced_weights(pixel_counts(train.masks, cfg.model.num_classes))
            named = ", ".join(f"{c} {v:g}" for c, v in zip(CLASSES, w, strict=False))
            print(f"class weights (balanced, from the train masks): {named}")
        self.class_weights = w


class SegmentationTask(Task):
    """Model + cross-entropy (+ 0.5 x auxiliary head) (+ optim.lovasz_weight x Lovasz-softmax)
    + the course's pooled mIoU. train_loss and val_loss are the cross-entropy, comparable with
    and without the Lovasz term; the term is logged as train_lovasz."""

    def __init__(self, cfg: Config, meta: ModelMeta):
        super().__init__(cfg, meta)
        self.val_cm = MulticlassConfusionMatrix(cfg.model.num_classes)
        weights = meta.class_weights
        self.register_buffer(
            "class_weights", torch.tensor(weights) if weights else None, persistent=False
        )

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(),
            y,
            weight=self.class_weights,
            label_smoothing=self.cfg.optim.label_smoothing,
        )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        d = self.cfg.data
        g = self._generator(x.device, batch_idx)
        x, y = random_tile_augment(x, y, d.crop_size, d.hflip, d.vflip, d.rot90, g)
        y = y.long()
        out = self.model(self._input(x))
        loss = self._loss(out["out"], y)
        if "aux" in out:
            loss = loss + 0.5 * self._loss(out["aux"], y)
        # sync_dist: the mean over every process's batches
        log = dict(on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("train_loss", loss, prog_bar=True, **log)
        weight = self.cfg.optim.lovasz_weight
        if weight:
            lovasz = self._lovasz(out["out"], y)
            self.log("train_lovasz", lovasz, **log)
            loss = loss + weight * lovasz
        return loss

    def _lovasz(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """On every other pixel in each direction: sorting every pixel cost 0.30 s per batch of
        8 tiles of 256x256 on 2 cores (60% of a training step), a quarter of them 0.06 s. The
        segmenters predict at 1/8 of the input or coarser, so the quarter still sees each output
        cell 16 times."""
        probs = logits[:, :, ::2, ::2].float().softmax(1)  # softmax is per pixel
        return lovasz_softmax(probs, y[:, ::2, ::2], min(NUM_SCORED, probs.shape[1]))

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        y = y.long()
        logits = segment_logits(self.model, self._input(x), self.meta.image_size)
        self.log(
            "val_loss", self._loss(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True
        )
        self.val_cm.update(logits.argmax(1), y)

    def on_validation_epoch_end(self) -> None:
        s = scores(self.val_cm.compute().cpu().numpy().astype(np.int64))
        self.val_cm.reset()
        self.log("val_miou", s["miou_present"], prog_bar=True)  # a 0/0 class left out
        self.log("val_pixel_acc", s["pixel_acc"])
        for name, v in s["iou"].items():
            self.log(f"val_iou_{name}", float("nan") if v is None else v)
