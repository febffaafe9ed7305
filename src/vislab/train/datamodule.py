"""What the classification and segmentation data modules share: decoded sets held in memory,
the train set's channel statistics, and the loaders."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from vislab.config import Config
from vislab.data.batches import EpochSampler, TensorImageDataset, channel_stats, keep_batch


def resolve_path(root: str | None, sub: str | None) -> Path | None:
    """sub relative to the data root (absolute paths stay as they are)."""
    if sub is None:
        return None
    p = Path(sub)
    return p if p.is_absolute() or root is None else Path(root) / p


class InMemoryData(L.LightningDataModule):
    """Subclasses decode their sets on construction and call ``hold``."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg

    def hold(self, train: TensorImageDataset, val: TensorImageDataset, classes: list[str]):
        self.train_set, self.val_set, self.classes = train, val, classes
        self.image_size = list(train.images.shape[-2:])  # [H, W] the model trains at
        d = self.cfg.data
        if d.mean is None or d.std is None:
            self.mean, self.std = channel_stats(train.images)
        else:
            self.mean, self.std = list(d.mean), list(d.std)

    def train_dataloader(self) -> DataLoader:
        # EpochSampler: the order depends on (seed, epoch) only, so resumed runs replay it
        sampler = EpochSampler(len(self.train_set), self.cfg.seed)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.data.batch_size,
            sampler=sampler,
            collate_fn=keep_batch,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set, batch_size=self.cfg.data.eval_batch_size, collate_fn=keep_batch
        )
