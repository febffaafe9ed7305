"""Running a trained model on batches: the one place where inference numerics live (layout,
normalisation, memory format, device, test-time augmentation), used by `vislab predict`,
`embed` and `progress`; training's validation shares the normalisation and memory format."""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vislab.data.batches import normalize
from vislab.devices import autocast, model_device
from vislab.errors import VislabError
from vislab.infer.meta import ModelMeta

# how the allocators that can fail say so: torch's CPU ("can't allocate memory") and CUDA
# ("out of memory") ones, ONNX Runtime's ("Failed to allocate memory"), and errno 12's text
# ("Cannot allocate memory", ENOMEM from mmap or a worker's fork)
_NO_MEMORY = re.compile(
    r"can't allocate memory|cannot allocate memory|out of memory|failed to allocate", re.I
)


@contextmanager
def memory_named(
    what: str, remedy: str = "free memory, or give a smaller --batch-size"
) -> Iterator[None]:
    """An allocation that fails inside, however much was estimated to fit (another process
    took the memory meanwhile, a ulimit), ends in one line: what ran out, the size that was
    asked for where the allocator says it, and remedy."""
    try:
        yield
    except Exception as e:
        text = str(e)
        ours = isinstance(e, VislabError)
        if ours or not (isinstance(e, MemoryError) or _NO_MEMORY.search(text)):
            raise
        asked = re.search(r"allocate (\d+) bytes", text)
        size = f" (an allocation of {int(asked.group(1)) / 2**30:.1f} GiB failed)" if asked else ""
        raise VislabError(f"out of memory {what}{size}; {remedy}") from None


def prepare(model: nn.Module) -> nn.Module:
    """Inference runs channels_last: 1.0-1.4x faster on the CPU with the same predictions
    (docs/RESULTS.md)."""
    return model.to(memory_format=torch.channels_last).eval()


def as_input(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def to_nchw(images: np.ndarray) -> torch.Tensor:
    """Decoded (N, H, W, 3) or (H, W, 3) uint8 images -> an (N, 3, H, W) uint8 tensor, a
    contiguous copy."""
    if not images.flags.writeable:  # torch shares writable memory only
        images = images.copy()
    x = torch.from_numpy(images)
    x = x[None] if x.ndim == 3 else x
    return x.permute(0, 3, 1, 2).contiguous()


def model_inputs(
    model: nn.Module, images: torch.Tensor, mean: list[float], std: list[float], batch_size: int
) -> Iterator[torch.Tensor]:
    """(N, 3, H, W) uint8 images, batch by batch, as the model takes them: on its device,
    normalised with its statistics, channels_last."""
    device = model_device(model)
    mean_t, std_t = torch.tensor(mean, device=device), torch.tensor(std, device=device)
    for i in range(0, len(images), batch_size):
        yield as_input(normalize(images[i : i + batch_size].to(device), mean_t, std_t))


@torch.inference_mode()
def class_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    mean: list[float],
    std: list[float],
    batch_size: int = 500,
    precision: str = "32",
    tta: bool = False,
    log: bool = False,
) -> torch.Tensor:
    """(N, K) float32 class probabilities of (N, 3, H, W) uint8 images (on the CPU), predicted
    on the model's device under the autocast of precision (devices.PRECISIONS). tta: the mean
    of the image's and its mirror image's. log: their logarithms, computed as such (exact
    where a probability would underflow to 0)."""
    model = prepare(model)
    out = []
    for x in model_inputs(model, images, mean, std, batch_size):
        with autocast(precision, x.device):
            if log:
                p = model(x).float().log_softmax(1)
                if tta:
                    mirror = model(x.flip(3)).float().log_softmax(1)
                    p = torch.logaddexp(p, mirror) - math.log(2)
            else:
                p = model(x).float().softmax(1)
                if tta:
                    p = (p + model(x.flip(3)).float().softmax(1)) / 2
        out.append(p.cpu())
    return torch.cat(out)


def segment_logits(
    model: nn.Module, x: torch.Tensor, size: list[int] | None, tta: bool = False
) -> torch.Tensor:
    """Logits at x's resolution for a normalised float batch x (B, 3, H, W), the tile resized
    whole: what training's validation does, and `vislab predict` for models whose metadata
    predates scale and window (tile_logits).

    A model trained on downscaled tiles sees the input resized to its training size (bilinear,
    antialiased like Pillow's resize); its logits are upsampled back to H x W. tta: average
    the logits of the tile's eight views (four 90-degree rotations, each also mirrored), each
    turned back first: an aerial tile has no up (+0.0076 mIoU on the CPU recipe, mirror alone
    +0.0033, docs/RESULTS.md)."""
    h, w = x.shape[-2:]
    if size is not None and (h, w) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True)
    return _resized(_views(model, x, tta), h, w)


def tile_logits(
    model: nn.Module, x: torch.Tensor, meta: ModelMeta, tta: bool = False, batch: int = 4
) -> torch.Tensor:
    """Logits at x's resolution for a normalised float batch x (B, 3, H, W) of tiles of any
    size, each kept at its aspect: rescaled by the factor training rescaled its tiles by
    (meta.scale), predicted in overlapping windows of the size training saw (slide_logits,
    `batch` windows per pass), the logits resized back to H x W. Metadata without a scale
    (files written before it was recorded): the tile resized whole (segment_logits)."""
    if meta.scale is None or meta.window is None:
        return segment_logits(model, x, meta.image_size, tta)
    h, w = x.shape[-2:]
    size = (max(1, round(h * meta.scale[0])), max(1, round(w * meta.scale[1])))
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
    return _resized(slide_logits(model, x, meta.window, tta, batch), h, w)


def window_starts(size: int, window: int) -> list[int]:
    """Where the windows along a side of `size` start, MMSegmentation's slide grid: a stride of
    2/3 of the window (a third of each window overlaps the next), the last one moved back to end
    at the edge; one window when the side is no longer than it."""
    if size <= window:
        return [0]
    stride = max(1, 2 * window // 3)
    n = (size - window + stride - 1) // stride + 1
    return [min(i * stride, size - window) for i in range(n)]


def slide_logits(
    model: nn.Module, x: torch.Tensor, window: list[int], tta: bool = False, batch: int = 4
) -> torch.Tensor:
    """Logits (B, K, H, W) of a normalised batch x (B, 3, H, W) from overlapping windows of
    window (H, W), clipped to x: each window predicted as a tile of its own (tta: its eight
    views), `batch` windows per pass, the logits averaged where windows overlap. Each pass is
    added into the sum as it comes, so memory holds x, the (B, K, H, W) sum and one pass."""
    h, w = x.shape[-2:]
    wh, ww = min(window[0], h), min(window[1], w)
    ys, xs = window_starts(h, wh), window_starts(w, ww)
    if len(ys) * len(xs) == 1:
        return _resized(_views(model, x, tta), h, w)
    # box-major: every image's first window, then every image's second, ...
    crops = [(i, y, x0) for y in ys for x0 in xs for i in range(len(x))]
    total = None
    for start in range(0, len(crops), batch):
        part = crops[start : start + batch]
        views = torch.stack([x[i, :, y : y + wh, x0 : x0 + ww] for i, y, x0 in part])
        logits = _resized(_views(model, views, tta), wh, ww).float()
        if total is None:
            total = logits.new_zeros((len(x), logits.shape[1], h, w))
        for (i, y, x0), one in zip(part, logits):
            total[i, :, y : y + wh, x0 : x0 + ww] += one
    return total.div_(_coverage(ys, wh, h).outer(_coverage(xs, ww, w)).to(total.device))


def _coverage(starts: list[int], window: int, size: int) -> torch.Tensor:
    """How many windows of that size, starting at starts, cover each position of a side."""
    count = torch.zeros(size)
    for s in starts:
        count[s : s + window] += 1
    return count


def _resized(logits: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """logits upsampled (bilinear) to h x w when the model predicted them coarser."""
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
    return logits


def _views(model: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
    """The model's logits for x; tta: the mean of its eight dihedral views'."""
    if not tta:
        return model(x)["out"]
    logits = sum(_dihedral_view(model, x, k, mirror) for k in range(4) for mirror in (0, 1))
    return logits / 8


def _dihedral_view(model: nn.Module, x: torch.Tensor, k: int, mirror: int) -> torch.Tensor:
    """The model's logits for x turned by k quarter turns (then mirrored), turned back."""
    v = torch.rot90(x, k, (2, 3))
    v = v.flip(3) if mirror else v
    logits = model(v)["out"].float()
    logits = logits.flip(3) if mirror else logits
    return torch.rot90(logits, -k, (2, 3))
