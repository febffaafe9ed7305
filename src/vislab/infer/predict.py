"""`vislab predict`: a folder of images -> a classifier's class names or a segmenter's masks.

Classifiers write a filename,label CSV of class names (the course's are its integers);
segmenters write one mask PNG per image, in the model's data set spec (a palette-mode PNG in its
colours by default, RGB for the course's land-cover set), at the image's own size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vislab.data.images import decode_all, list_images, read_rgb
from vislab.data.store import available_memory
from vislab.data.tiles import load_sat_images
from vislab.devices import autocast, check_precision, resolve_device
from vislab.errors import VislabError
from vislab.fileio import atomic_write_csv, staged_into
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import (
    classify,
    model_inputs,
    prepare,
    tile_logits,
    to_nchw,
)
from vislab.infer.meta import ModelMeta
from vislab.runtime import set_threads
from vislab.steps import Steps

MASK_FORMATS = ("palette", "rgb", "index")  # what `--format` writes (DatasetSpec.write_mask)


def read_resized(files: list[Path], size: list[int] | None) -> np.ndarray:
    """(N, H, W, 3) uint8 images, each resized (bilinear, as training's data.image_size did) to
    size (H, W) when it differs; None: as they are, which must then be one size."""
    if size is None:
        return decode_all(files)
    h, w = size
    out = np.empty((len(files), h, w, 3), dtype=np.uint8)
    for i, path in enumerate(files):
        rgb = read_rgb(path)
        if rgb.shape[:2] != (h, w):
            rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
        out[i] = rgb
    return out


def predict_classes(
    model: torch.nn.Module,
    meta: ModelMeta,
    images_dir: Path,
    out_csv: Path,
    *,
    batch_size: int,
    precision: str,
    tta: bool,
) -> int:
    """Write out_csv: each image's file name and its predicted class name (an index the
    metadata names no class for, as in a model trained with a larger head: its number)."""
    out_csv = Path(out_csv)
    if out_csv.is_dir():
        raise VislabError(f"--out {out_csv} is a folder; a classifier writes a CSV file")
    files = list_images(images_dir)
    images = to_nchw(read_resized(files, meta.image_size))
    labels = classify(model, images, meta.mean, meta.std, batch_size, precision, tta)
    names = meta.classes
    rows = [
        (p.name, names[i] if i < len(names) else str(i)) for p, i in zip(files, labels.tolist())
    ]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out_csv, [("filename", "label"), *rows])  # a comma in a name is quoted
    return len(files)


@torch.inference_mode()
def predict_masks(
    model: torch.nn.Module,
    meta: ModelMeta,
    images_dir: Path,
    out_dir: Path,
    *,
    batch_size: int,
    precision: str,
    tta: bool,
    fmt: str | None = None,
) -> int:
    """Write one mask per image of images_dir, xxxx.png, at the image's size, in the model's
    spec: fmt palette, rgb or index (DatasetSpec.write_mask), default the spec's own.

    Masks go to a scratch folder beside out_dir and move in only when every tile is done:
    a failure (an unreadable tile, a full disk, Ctrl-C) leaves out_dir as it was."""
    if fmt is not None and fmt not in MASK_FORMATS:
        raise VislabError(f"--format {fmt!r} is not one of {', '.join(MASK_FORMATS)}")
    files, ids = load_sat_images(images_dir)
    out_dir = Path(out_dir)
    if out_dir.suffix.lower() == ".csv" or out_dir.is_file():
        raise VislabError(f"--out {out_dir} must be a folder; a segmenter writes PNG masks")
    with staged_into(out_dir, "--out") as scratch:
        _write_masks(
            model,
            meta,
            files,
            ids,
            scratch,
            batch_size=batch_size,
            precision=precision,
            tta=tta,
            fmt=fmt,
        )
    return len(files)


def _write_masks(
    model: torch.nn.Module,
    meta: ModelMeta,
    files: list[Path],
    ids: list[str],
    folder: Path,
    *,
    batch_size: int,
    precision: str,
    tta: bool,
    fmt: str | None,
) -> None:
    model = prepare(model)
    spec = meta.spec()
    steps = Steps(len(files), "predict", "tiles")
    for i in range(0, len(files), batch_size):
        chunk = [read_rgb(p) for p in files[i : i + batch_size]]
        groups = _groups(chunk, files[i : i + batch_size], meta)
        preds = []
        for g in groups:
            (x,) = model_inputs(model, to_nchw(np.stack(g)), meta.mean, meta.std, len(g))
            with autocast(precision, x.device):
                logits = tile_logits(model, x, meta, tta, batch_size)
            preds += list(logits.float().argmax(1).to(torch.uint8).cpu().numpy())
        for tile, pred in zip(ids[i : i + batch_size], preds):
            spec.write_mask(pred, folder / f"{tile}.png", fmt)
        steps.step(len(chunk))
    steps.close()


def _groups(chunk: list[np.ndarray], files: list[Path], meta: ModelMeta) -> list[list]:
    """The decoded tiles of chunk in the groups predicted in one pass: all of them when they
    are one size and fit in the free memory together, else one at a time. A tile that alone
    needs more memory than is free is refused, named, before any of it is predicted."""
    free = available_memory()
    needs = [predict_bytes(c.shape[0], c.shape[1], meta) for c in chunk]
    for path, tile, need in zip(files, chunk, needs):
        if need > free:
            h, w = tile.shape[:2]
            raise VislabError(
                f"{path}: a {w}x{h} tile needs about {need / 2**30:.1f} GiB to predict and "
                f"{free / 2**30:.1f} GiB of memory are free; cut it into smaller tiles"
            )
    if len({c.shape for c in chunk}) == 1 and sum(needs) <= free:
        return [chunk]
    return [[c] for c in chunk]


def predict_bytes(h: int, w: int, meta: ModelMeta) -> int:
    """About the most memory predicting one h x w tile holds (forward.tile_logits): the
    decoded tile and its normalised copy, the rescaled copy with the window logits summed at
    the model's scale, the logits resized back to h x w and their argmax. The model's own
    activations are bounded by the window and left out."""
    k = meta.num_classes
    if meta.scale is not None:
        sh, sw = max(1, round(h * meta.scale[0])), max(1, round(w * meta.scale[1]))
    else:
        sh, sw = meta.image_size or (h, w)
    # bytes a pixel: uint8 RGB twice, float RGB with normalize's temporary, K float logits,
    # an int64 and a uint8 class; at the model's scale: float RGB, K float sums and a count
    return h * w * (3 + 3 + 24 + 4 * k + 9) + sh * sw * (12 + 4 * k + 4)


def predict_folder(
    ckpt: Path,
    images_dir: Path,
    out: Path,
    *,
    batch_size: int | None = None,
    precision: str = "32",
    threads: int | None = None,
    engine: str = "auto",
    tta: bool = False,
    fmt: str | None = None,
    device: str = "auto",
) -> tuple[int, str]:
    """Predict every image of images_dir with the checkpoint (or its export, see
    export.model_file) on device (devices.DEVICES); returns the number of images and the
    engine that ran them, with its device. fmt: a segmenter's mask format (MASK_FORMATS),
    default its spec's."""
    from vislab.infer.export import model_file
    from vislab.tasks import task_spec

    dev = resolve_device(device)
    check_precision(precision, dev)
    set_threads(threads)
    model, meta = load_model(model_file(ckpt, engine, dev), device=dev)
    ran = f"{'onnxruntime' if meta.format == 'onnx' else 'pytorch'} on {dev}"
    if meta.format == "onnx" and precision != "32":
        raise VislabError(
            f"--precision {precision} is for PyTorch models; an ONNX model runs in fp32"
        )
    batch_size = batch_size or task_spec(meta.task).predict_batch
    if meta.task == "segmentation":
        n = predict_masks(
            model,
            meta,
            images_dir,
            out,
            batch_size=batch_size,
            precision=precision,
            tta=tta,
            fmt=fmt,
        )
    elif fmt is not None:
        raise VislabError(f"--format is for a segmenter's masks; {ckpt} is a classifier")
    else:
        n = predict_classes(
            model, meta, images_dir, out, batch_size=batch_size, precision=precision, tta=tta
        )
    return n, ran
