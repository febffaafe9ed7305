"""`vislab predict`: a folder of images -> the course's outputs.

Classifiers write a filename,label CSV; segmenters write one RGB mask PNG per image.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from vislab.course.landcover import write_mask
from vislab.data.images import load_unlabeled, read_rgb
from vislab.data.tiles import load_sat_images
from vislab.errors import VislabError
from vislab.fileio import atomic_write_csv
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import (
    classify,
    model_inputs,
    precision_context,
    prepare,
    segment_logits,
    to_nchw,
)
from vislab.infer.meta import ModelMeta
from vislab.runtime import set_threads


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
    h, w = meta.image_size
    data = load_unlabeled(images_dir, image_size=h if h == w else None)
    images = to_nchw(data.images)
    labels = classify(model, images, meta.mean, meta.std, batch_size, precision, tta)
    out_csv = Path(out_csv)
    if out_csv.is_dir():
        raise VislabError(f"--out {out_csv} is a folder; a classifier writes a CSV file")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    rows = zip(data.names, labels.tolist())
    atomic_write_csv(out_csv, [("filename", "label"), *rows])  # a comma in a name is quoted
    return len(data.names)


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
) -> int:
    """Masks go to a scratch folder beside out_dir and move in only when every tile is done:
    a failure (an unreadable tile, a full disk, Ctrl-C) leaves out_dir as it was."""
    files, ids = load_sat_images(images_dir)
    out_dir = Path(out_dir)
    if out_dir.suffix.lower() == ".csv" or out_dir.is_file():
        raise VislabError(f"--out {out_dir} must be a folder; a segmenter writes PNG masks")
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        _write_masks(
            model, meta, files, ids, scratch, batch_size=batch_size, precision=precision, tta=tta
        )
        for tile in ids:
            os.replace(scratch / f"{tile}.png", out_dir / f"{tile}.png")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return len(files)


def progress_bar(total: int):
    """tqdm's bar on a terminal, else None. tqdm is imported only then: a submission folder
    runs where it may be missing."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="tile", desc="predict")


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
) -> None:
    model = prepare(model)
    bar = progress_bar(len(files))
    for i in range(0, len(files), batch_size):
        chunk = [read_rgb(p) for p in files[i : i + batch_size]]
        if len({c.shape for c in chunk}) > 1:  # mixed sizes: one at a time
            groups = [[c] for c in chunk]
        else:
            groups = [chunk]
        preds = []
        for g in groups:
            (x,) = model_inputs(model, to_nchw(np.stack(g)), meta.mean, meta.std, len(g))
            with precision_context(precision):
                logits = segment_logits(model, x, meta.image_size, tta)
            preds += list(logits.float().argmax(1).to(torch.uint8).cpu().numpy())
        for tile, pred in zip(ids[i : i + batch_size], preds):
            write_mask(pred, folder / f"{tile}.png")
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()


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
) -> tuple[int, str]:
    """Predict every image of images_dir with the checkpoint (or its export, see
    export.model_file); returns the number of images and the engine that ran them."""
    from vislab.infer.export import model_file
    from vislab.tasks import task_spec

    set_threads(threads)
    model, meta = load_model(model_file(ckpt, engine))
    ran = "onnxruntime" if meta.format == "onnx" else "pytorch"
    if meta.format == "onnx" and precision == "bf16":
        raise VislabError("--precision bf16 is for PyTorch models; an ONNX model runs in fp32")
    spec = task_spec(meta.task)
    batch_size = batch_size or spec.predict_batch
    n = spec.predict()(
        model, meta, images_dir, out, batch_size=batch_size, precision=precision, tta=tta
    )
    return n, ran
