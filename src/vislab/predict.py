"""`vislab predict` for classifiers: a folder of images -> the course's filename,label CSV."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from vislab.checkpoint import load_model
from vislab.data.batches import normalize
from vislab.data.images import load_unlabeled
from vislab.fileio import atomic_write_bytes
from vislab.runtime import set_threads


@torch.inference_mode()
def predict_labels(
    model: torch.nn.Module,
    images: torch.Tensor,
    mean: list[float],
    std: list[float],
    batch_size: int = 500,
    precision: str = "32",
) -> torch.Tensor:
    """Class index for each (N, 3, H, W) uint8 image. precision "bf16" runs channels_last
    with bf16 autocast (about 3x faster on CPU; argmax can differ on near ties)."""
    fast = precision == "bf16"
    if fast:
        model = model.to(memory_format=torch.channels_last)
    mean_t, std_t = torch.tensor(mean), torch.tensor(std)
    out = []
    for i in range(0, len(images), batch_size):
        x = normalize(images[i : i + batch_size], mean_t, std_t)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if fast else contextlib.nullcontext()
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        with ctx:
            out.append(model(x).float().argmax(1))
    return torch.cat(out)


def predict_folder(
    ckpt: Path,
    images_dir: Path,
    out_csv: Path,
    batch_size: int = 500,
    precision: str = "32",
    threads: int | None = None,
) -> int:
    """Predict every image of images_dir and write out_csv (sorted base names); returns N."""
    set_threads(threads)
    model, meta = load_model(ckpt, task="classification")
    h, w = meta["image_size"]
    data = load_unlabeled(images_dir, image_size=h if h == w else None)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    labels = predict_labels(model, images, meta["mean"], meta["std"], batch_size, precision)
    buf = io.StringIO()
    buf.write("filename,label\n")
    for name, label in zip(data.names, labels.tolist(), strict=True):
        buf.write(f"{name},{label}\n")
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_csv, buf.getvalue().encode())
    return len(data.names)
