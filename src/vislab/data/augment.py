"""Whole-batch augmentation for training, on the batch's device: crops and flips, MixUp and
CutMix, torchvision's auto-augment policies, random erasing, and the aligned transforms of
tiles and masks.

The augmentations draw their random numbers (a few per image) from a CPU generator and move
them to the batch's device: the same seed gives the same crops, flips and mixes on a GPU as on
the CPU, and a CUDA batch needs no CUDA generator. Training only: `vislab submission` does not
ship this module (it needs torchvision's transforms.v2, which the course's torchvision lacks).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2


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
