"""Segmentation data module and Lightning task: the data set spec (vislab/data/spec.py) gives
the classes, the ignore index of the loss and the metrics, and the classes the mIoU scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassConfusionMatrix

from vislab.config import Config, check_class_weights
from vislab.data.augment import random_tile_augment
from vislab.data.batches import TensorImageDataset
from vislab.data.spec import DatasetSpec
from vislab.data.tiles import balanced_weights, load_tiles, pixel_counts, resolve_spec
from vislab.errors import VislabError
from vislab.infer.forward import segment_logits
from vislab.infer.meta import ModelMeta
from vislab.metrics.miou import scores
from vislab.train.datamodule import DecodedData
from vislab.train.lovasz import lovasz_softmax
from vislab.train.task import Task


def _class_weights(w: list[float] | str | None, masks: np.ndarray, spec: DatasetSpec):
    """optim.class_weights for the spec's classes, "balanced" worked out from the train masks
    (ignored pixels not counted)."""
    if w is None:
        return None
    if w != "balanced":
        check_class_weights(w, spec.num_classes)
        return w
    w = balanced_weights(pixel_counts(masks, spec.num_classes), spec.scored)
    named = ", ".join(f"{c} {v:g}" for c, v in zip(spec.classes, w, strict=True))
    print(f"class weights (balanced, from the train masks): {named}")
    return w


class SegmentationData(DecodedData):
    """Train tiles at data.image_size (downscaled for the CPU when set), val tiles at full size:
    the course scores masks at their own resolution. spec: the data set spec (resolve_spec of
    the recipe's data keys and the train folder); class_weights: optim.class_weights with
    "balanced" worked out from the train masks."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        d = cfg.data.located()
        train_dir = d.resolve(d.train)
        spec = resolve_spec(train_dir, d.spec, d.classes, d.palette, d.ignore_index, d.mask_format)
        store = {"store": d.store, "processes": self.processes()}
        train = load_tiles(train_dir, size=d.image_size, limit=d.limit, spec=spec, **store)
        val = load_tiles(d.resolve(d.val), size=None, limit=d.limit, spec=spec, **store)
        h, w = train.images.shape[1:3]
        if d.crop_size is not None and d.crop_size > min(h, w):
            raise VislabError(
                f"config key data.crop_size: {d.crop_size} is larger than the training tiles "
                f"({w}x{h}{' after data.image_size' if d.image_size else ''})"
            )
        if d.rot90 and d.crop_size is None and h != w:
            raise VislabError(
                f"config key data.rot90: the training tiles are {w}x{h}, and a quarter turn of "
                "a tile that is not square does not fit its batch: set data.crop_size (square "
                "crops) or data.image_size, or leave data.rot90 out"
            )
        # images and masks stay uint8 (masks become int64 per batch): 2,000 full-size course
        # masks take 0.5 GB as uint8, 4.2 GB as int64
        self.hold(
            TensorImageDataset(train.images, train.masks),
            TensorImageDataset(val.images, val.masks),
            list(spec.classes),
            spec,
        )
        self.class_weights = _class_weights(cfg.optim.class_weights, train.masks, spec)


class SegmentationTask(Task):
    """Model + cross-entropy (+ 0.5 x auxiliary head) (+ optim.lovasz_weight x Lovasz-softmax)
    + the pooled mIoU over the spec's scored classes; pixels of the spec's ignore index count in
    none of them. train_loss and val_loss are the cross-entropy, comparable with and without
    the Lovasz term; the term is logged as train_lovasz."""

    def __init__(
        self,
        meta: ModelMeta,
        *,
        crop_size: int | None = None,
        hflip: bool = False,
        vflip: bool = False,
        rot90: bool = False,
        lovasz_weight: float = 0.0,
        **common: Any,
    ):
        super().__init__(meta, **common)
        self.save_hyperparameters(ignore=["meta"])
        self.spec = meta.spec()
        self.val_cm = MulticlassConfusionMatrix(
            meta.num_classes, ignore_index=self.spec.ignore_index
        )
        weights = meta.class_weights
        self.register_buffer(
            "class_weights", torch.tensor(weights) if weights else None, persistent=False
        )

    @classmethod
    def hyperparameters(cls, cfg: Config) -> dict[str, Any]:
        d = cfg.data
        return dict(
            super().hyperparameters(cfg),
            crop_size=d.crop_size,
            hflip=d.hflip,
            vflip=d.vflip,
            rot90=d.rot90,
            lovasz_weight=cfg.optim.lovasz_weight,
        )

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ignore = self.spec.ignore_index
        if not (y != ignore).any():  # every pixel ignored: the mean would be 0/0
            return logits.sum() * 0.0
        return F.cross_entropy(
            logits.float(),
            y,
            weight=self.class_weights,
            ignore_index=ignore,
            label_smoothing=self.hparams.label_smoothing,
        )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        h = self.hparams
        g = self._generator(batch_idx)
        x, y = random_tile_augment(x, y, h.crop_size, h.hflip, h.vflip, h.rot90, g)
        y = y.long()
        out = self.model(self._input(x))
        loss = self._loss(out["out"], y)
        if "aux" in out:
            loss = loss + 0.5 * self._loss(out["aux"], y)
        # sync_dist: the mean over every process's batches
        log = dict(on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("train_loss", loss, prog_bar=True, **log)
        weight = h.lovasz_weight
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
        # the scored classes are 0 .. n-1; lovasz_softmax leaves out the pixels labelled n or
        # above: the course's unknown, and the ignore index, which is no class
        n = max(self.spec.scored) + 1
        return lovasz_softmax(probs, y[:, ::2, ::2], n)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        y = y.long()
        logits = segment_logits(self.model, self._input(x), self.meta.image_size)
        self.log(
            "val_loss", self._loss(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True
        )
        self.val_cm.update(logits.argmax(1), y)

    def on_validation_epoch_end(self) -> None:
        s = scores(self.val_cm.compute().cpu().numpy().astype(np.int64), self.spec)
        self.val_cm.reset()
        self.log("val_miou", s["miou_present"], prog_bar=True)  # a 0/0 class left out
        self.log("val_pixel_acc", s["pixel_acc"])
        for name, v in s["iou"].items():
            self.log(f"val_iou_{name}", float("nan") if v is None else v)
