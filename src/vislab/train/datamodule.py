"""What the classification and segmentation data modules share: decoded sets (in memory or
memory-mapped from the disk cache, data.store), the train set's channel statistics, and the
loaders."""

from __future__ import annotations

import os
import warnings

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from vislab.config import Config
from vislab.data.batches import EpochSampler, TensorImageDataset, channel_stats, keep_batch
from vislab.data.spec import DatasetSpec
from vislab.errors import VislabWarning
from vislab.models import weights_source


class DecodedData(L.LightningDataModule):
    """Subclasses decode their sets on construction and call ``hold``."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg

    def processes(self) -> int:
        """How many training processes on this machine would each hold the decoded set (for
        data.store auto): the launcher's count, else trainer.devices when it is a number."""
        local = os.environ.get("LOCAL_WORLD_SIZE")
        if local:
            return int(local)
        devices = self.cfg.trainer.devices
        if isinstance(devices, list):
            return len(devices)
        return devices if isinstance(devices, int) else 1

    def hold(
        self,
        train: TensorImageDataset,
        val: TensorImageDataset,
        classes: list[str],
        spec: DatasetSpec | None = None,
    ):
        """classes: the names in index order, the source of the number of classes the run
        trains; spec: a segmentation set's data set spec."""
        self.train_set, self.val_set, self.classes, self.spec = train, val, classes, spec
        self.image_size = list(train.size)  # [H, W] the model trains at
        self.class_weights: list[float] | None = None  # the loss's, per class (segmentation)
        d, m = self.cfg.data, self.cfg.model
        source = weights_source(m.name, m.kwargs)
        if d.mean is not None and d.std is not None:
            self.mean, self.std = list(d.mean), list(d.std)
        elif source is not None:  # the statistics the pretrained weights were trained with
            pre = source.preprocessing()
            self.mean, self.std = pre.mean, pre.std
        else:
            self.mean, self.std = channel_stats(train.images)
            flat = [c for c, v in enumerate(self.std) if v == 0]
            if flat:  # dividing by 0 would make every input NaN, and the loss with it
                warnings.warn(
                    f"channel(s) {', '.join(map(str, flat))} of the train images hold one value "
                    "(std 0): normalised with std 1 instead (data.std sets the statistics)",
                    VislabWarning,
                    stacklevel=2,
                )
                self.std = [v or 1.0 for v in self.std]

    def class_balance(self) -> dict:
        """How many images (classification) or pixels (segmentation, the train masks at the
        size training sees them) each class has in the train and validation sets."""
        from vislab.data.tiles import pixel_counts

        k = len(self.classes)
        out: dict = {"classes": list(self.classes)}
        for name, s in (("train", self.train_set), ("val", self.val_set)):
            labels = s.labels.numpy()
            counts = (
                np.bincount(labels, minlength=k) if labels.ndim == 1 else pixel_counts(labels, k)
            )
            out[name] = [int(n) for n in counts[:k]]
        out["unit"] = "images" if self.train_set.labels.ndim == 1 else "pixels"
        return out

    def _ranks(self) -> tuple[int, int]:
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        # EpochSampler: the order depends on (seed, epoch) only, so resumed runs replay it; it
        # deals the ranks their share itself (the Trainer's distributed sampler is off: it
        # would reshuffle with a seed of its own)
        rank, world = self._ranks()
        sampler = EpochSampler(len(self.train_set), self.cfg.seed, rank=rank, world=world)
        batch = self.cfg.data.batch_size
        return DataLoader(
            self.train_set,
            batch_size=batch,
            sampler=sampler,
            collate_fn=keep_batch,
            # a last batch of one image would stop batch norm (a 1x1 map of one image has no
            # variance): that epoch leaves the image out, and the next shuffle brings it back
            drop_last=len(sampler) % batch == 1,
        )

    def val_dataloader(self) -> DataLoader:
        # every validation image exactly once over all ranks; the metrics sum over ranks
        rank, world = self._ranks()
        return DataLoader(
            self.val_set,
            batch_size=self.cfg.data.eval_batch_size,
            sampler=range(rank, len(self.val_set), world),
            collate_fn=keep_batch,
        )
