"""Tensor datasets of decoded sets, their samplers and normalisation.

Decoded images live in one uint8 (N, H, W, 3) array, in memory or memory-mapped from the disk
cache (data/store.py); a batch is a slice of it, fetched in one indexing operation
(``__getitems__``), turned channels-first, and augmented as a whole on the device in the
training step (data/augment.py). Per-item PIL decoding every epoch measured 17x slower on a
2-core machine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vislab.data.images import CHUNK_BYTES


class TensorImageDataset(Dataset):
    """(N, H, W, 3) uint8 images (as decoded: in memory or a memory map) with (N,) int64
    labels or (N, H, W) uint8 masks, and optionally (N, K) soft targets (a teacher's class
    probabilities); batches are fetched in one slice and come out as contiguous (B, 3, H, W)
    uint8, the decoded array never copied whole: (images, labels) or (images, labels,
    targets)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, targets: torch.Tensor | None = None):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError("images must be an (N, H, W, C) uint8 array")
        if targets is not None and len(targets) != len(images):
            raise ValueError("targets must hold one row per image")
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)
        self.targets = targets

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return tuple(self.images.shape[1:3])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        item = (self.images[i].permute(2, 0, 1).contiguous(), self.labels[i])
        return item if self.targets is None else (*item, self.targets[i])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices)
        batch = (self.images[idx].permute(0, 3, 1, 2).contiguous(), self.labels[idx])
        return batch if self.targets is None else (*batch, self.targets[idx])


def keep_batch(batch):
    """collate_fn for datasets whose __getitems__ already returns a batch."""
    return batch


class EpochSampler(Sampler[int]):
    """A shuffling sampler whose order depends only on (seed, epoch), dealt out to the ranks.

    Lightning calls ``set_epoch`` before each epoch, so a run resumed from an epoch's end
    replays the very same order as an uninterrupted run. With several processes, rank r takes
    every world-th index of the one-process order (the tail that does not divide evenly is
    dropped), so the ranks' k-th batches together are the one-process run's k-th batch of
    world times the size.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.world

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        return iter(order[: len(self) * self.world][self.rank :: self.world])


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, scaled to 0-1 and standardised per channel."""
    return (x.float().div_(255) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (unbiased) std, 0-1 scale, of an (N, H, W, C) uint8 tensor.

    Sums in float64 over chunks of about 16 MB of pixels (128 MB as float64): a float64 copy
    of 2,000 full-size course tiles would take 12.6 GB. Sums of uint8 values up to 255^2 are
    exact in float64."""
    total = torch.zeros(images.shape[-1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    per_image = max(1, images[0].numel())
    for chunk in images.split(max(1, CHUNK_BYTES // per_image)):
        x = chunk.to(torch.float64)
        total += x.sum(dim=(0, 1, 2))
        squares += x.square().sum(dim=(0, 1, 2))
    n = images.numel() // images.shape[-1]
    mean = total / n
    var = ((squares - n * mean.square()) / (n - 1)).clamp(min=0)  # no rounding below 0
    return (mean / 255).tolist(), (var.sqrt() / 255).tolist()
