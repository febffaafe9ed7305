"""Tensor datasets of decoded sets and whole-batch augmentation.

Decoded images live in one uint8 (N, H, W, 3) array, in memory or memory-mapped from the disk
cache (data/store.py); a batch is a slice of it, fetched in one indexing operation
(``__getitems__``), turned channels-first, and augmented as a whole on the device in the
training step. Per-item PIL decoding every epoch measured 17x slower on a 2-core machine.

The augmentations draw their random numbers (a few per image) from a CPU generator and move
them to the batch's device: the same seed gives the same crops, flips and mixes on a GPU as on
the CPU, and a CUDA batch needs no CUDA generator.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import v2

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


def random_crop_flip(
    x: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Random crop after reflect padding, and random horizontal flips, for a float batch.

    x: (B, C, H, W) float. Each image gets its own offset in [0, 2*padding] and its own flip.
    """
    b, _, h, w = x.shape
    dev = x.device
    if padding > 0:
        padded = F.pad(x, (padding,) * 4, mode="reflect")
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(dev)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(dev)
        rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]  # (B, H, 1)
        cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]  # (B, 1, W)
        batch = torch.arange(b, device=dev)[:, None, None]
        # advanced indexing on dims 0, 2, 3 puts them first: (B, H, W, C)
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if hflip:
        flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def mix_batch(
    x: torch.Tensor, mixup: float, cutmix: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """MixUp or CutMix of a batch with itself in a random order, one draw per batch.

    Returns (mixed batch, the order, lam): the loss is lam * loss(labels) + (1 - lam) *
    loss(labels[order]). mixup and cutmix are the alphas of the Beta(alpha, alpha) that lam
    is drawn from (0 = off); with both on, each batch takes one of the two at even odds.
    CutMix pastes one box of area about 1 - lam from the other image (clipped at the border)
    and lam becomes the exact share of pixels kept."""
    b, _, h, w = x.shape
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
    order = torch.randperm(b, generator=generator).to(x.device)
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix, cutmix) if use_cutmix else rng.beta(mixup, mixup))
    if not use_cutmix:
        return x * lam + x[order] * (1 - lam), order, lam
    side = np.sqrt(1 - lam)
    ch, cw = int(h * side), int(w * side)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[order, :, y0:y1, x0:x1]
    return x, order, 1 - (y1 - y0) * (x1 - x0) / (h * w)


# data.auto_augment: torchvision's learned and random policies, each image its own draw
AUTO_AUGMENT = {
    "trivialaugment": v2.TrivialAugmentWide,
    "randaugment": v2.RandAugment,
    "autoaugment-imagenet": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET),
    "autoaugment-cifar10": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
}


def auto_augment(x: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """One of AUTO_AUGMENT's policies on a uint8 batch (B, C, H, W), each image its own draw
    of operations and magnitudes. torchvision draws from torch's global CPU generator: it is
    seeded from `generator` inside a fork, so the same seed gives the same images and the
    caller's random state (the CPU's, and any GPU's) is left as it was. Autocast is off
    inside: rotations and sharpness would otherwise compute in bf16 / fp16 under a
    mixed-precision training step and give other images than at fp32."""
    transform = AUTO_AUGMENT[policy]()
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]), torch.autocast(x.device.type, enabled=False):
        torch.default_generator.manual_seed(seed)
        return torch.stack([transform(image) for image in x])


def random_erasing(
    x: torch.Tensor,
    p: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 1 / 3),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017) as torchvision's RandomErasing does it, on a
    normalised float batch (B, C, H, W): each image, with probability p, has one rectangle of
    `area` times its pixels (uniform) and aspect ratio in `ratio` (log-uniform) set to 0, the
    normalisation's mean colour. Like torchvision, ten draws are tried for a rectangle that
    fits and an image is left whole if none does."""
    b, _, h, w = x.shape
    tries = 10
    erase = torch.rand(b, generator=generator) < p
    u = torch.rand(b, tries, 4, generator=generator, dtype=torch.float64)
    size = h * w * (area[0] + (area[1] - area[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    eh, ew = (size * aspect).sqrt().round(), (size / aspect).sqrt().round()
    fits = (eh >= 1) & (ew >= 1) & (eh < h) & (ew < w)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # the first draw that fits
    erase &= fits.any(1)
    eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
    y0 = (u[..., 2].gather(1, first)[:, 0] * (h - eh + 1)).floor()
    x0 = (u[..., 3].gather(1, first)[:, 0] * (w - ew + 1)).floor()
    rows = torch.arange(h, dtype=torch.float64)
    cols = torch.arange(w, dtype=torch.float64)
    inside_rows = (rows >= y0[:, None]) & (rows < (y0 + eh)[:, None])  # (B, H)
    inside_cols = (cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])  # (B, W)
    box = inside_rows[:, :, None] & inside_cols[:, None, :] & erase[:, None, None]
    return x.masked_fill(box[:, None].to(x.device), 0.0)


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


def random_tile_augment(
    x: torch.Tensor,
    y: torch.Tensor,
    crop: int | None,
    hflip: bool,
    vflip: bool,
    rot90: bool,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned augmentation of images x (B, C, H, W) and masks y (B, H, W), per sample:
    a random crop of crop x crop, horizontal and vertical flips, and rotations by k*90 degrees
    (square crops only). The mask undergoes exactly the image's geometric transform."""
    b, _, h, w = x.shape
    dev = x.device
    if crop is not None and (crop < h or crop < w):
        oy = torch.randint(0, h - crop + 1, (b,), generator=generator).to(dev)
        ox = torch.randint(0, w - crop + 1, (b,), generator=generator).to(dev)
        rows = (oy[:, None] + torch.arange(crop, device=dev))[:, :, None]  # (B, crop, 1)
        cols = (ox[:, None] + torch.arange(crop, device=dev))[:, None, :]  # (B, 1, crop)
        batch = torch.arange(b, device=dev)[:, None, None]
        x = x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
        y = y[batch, rows, cols]

    def where(flag: torch.Tensor, a: torch.Tensor, ta: torch.Tensor) -> torch.Tensor:
        return torch.where(flag.view(-1, *([1] * (a.ndim - 1))), ta, a)

    for enabled, dim in ((hflip, -1), (vflip, -2)):
        if enabled:
            flag = (torch.rand(b, generator=generator) < 0.5).to(dev)
            x, y = where(flag, x, x.flip(dim)), where(flag, y, y.flip(dim))
    if rot90 and x.shape[-1] == x.shape[-2]:
        k = torch.randint(0, 4, (b,), generator=generator).to(dev)
        xs, ys = x, y
        for r in (1, 2, 3):
            flag = k == r
            xs = where(flag, xs, torch.rot90(x, r, (-2, -1)))
            ys = where(flag, ys, torch.rot90(y, r, (-2, -1)))
        x, y = xs, ys
    return x.contiguous(), y.contiguous()
