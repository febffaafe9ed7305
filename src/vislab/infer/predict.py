"""`vislab predict`: a folder of images -> a classifier's class names or a segmenter's masks.

Classifiers write a filename,label CSV of class names (the course's are its integers);
segmenters write one mask PNG per image, in the model's data set spec (a palette-mode PNG in its
colours by default, RGB for the course's land-cover set), at the image's own size. Several
models of one task and one set of classes predict as an ensemble: the mean of their class
probabilities (each model with its own input size, normalisation and windows).
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
    class_probabilities,
    memory_named,
    model_inputs,
    prepare,
    tile_logits,
    to_nchw,
)
from vislab.infer.meta import ModelMeta
from vislab.runtime import set_threads
from vislab.steps import Steps

MASK_FORMATS = ("palette", "rgb", "index")  # what `--format` writes (DatasetSpec.write_mask)
# bytes a pixel of a classifier's input that its layers hold at once, at most: measured
# (peak memory of one forward pass) 1.3 KB for vislab's ResNet-9, 0.29 KB for Model A,
# 0.15-0.27 KB for timm's ResNet-18 and EfficientNet-B0
CLASSIFIER_ACTIVATIONS = 1536


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
    members: list,
    images_dir: Path,
    out_csv: Path,
    *,
    batch_size: int,
    precision: str,
    tta: bool,
) -> int:
    """Write out_csv: each image's file name and its predicted class name (an index the
    metadata names no class for, as in a model trained with a larger head: its number).
    members: (model, ModelMeta) pairs, one or an ensemble (same_classes), whose class
    probabilities are averaged. The images are decoded a batch at a time, batches as large as
    the free memory holds (fitting_batch); a model input too large for it is refused before
    any is predicted."""
    out_csv = Path(out_csv)
    if out_csv.is_dir():
        raise VislabError(f"--out {out_csv} is a folder; a classifier writes a CSV file")
    files = list_images(images_dir)
    first = read_rgb(files[0]).shape[:2]
    n = batch_size
    for _, meta in members:
        h, w = meta.image_size or first
        what = (
            f"the model's input size {w}x{h} (its image_size)"
            if meta.image_size
            else f"{files[0]}: a {w}x{h} image"
        )
        remedy = "give a model trained at a smaller data.image_size"
        n = fitting_batch(predict_bytes(h, w, meta), n, what, remedy)
    labels = []
    for i in range(0, len(files), n):
        decoded: dict[tuple | None, np.ndarray] = {}  # by input size: members may share one
        probs = None
        for model, meta in members:
            key = tuple(meta.image_size) if meta.image_size else None
            if key not in decoded:
                decoded[key] = _decoded(files, i, n, meta.image_size, first)
            x = to_nchw(decoded[key])
            p = class_probabilities(model, x, meta.mean, meta.std, n, precision, tta)
            probs = p if probs is None else probs + p
        labels.append(probs.argmax(1))
    names = members[0][1].classes
    rows = [
        (p.name, names[i] if i < len(names) else str(i))
        for p, i in zip(files, torch.cat(labels).tolist())
    ]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out_csv, [("filename", "label"), *rows])  # a comma in a name is quoted
    return len(files)


def _decoded(
    files: list[Path], i: int, n: int, size: list[int] | None, first: tuple[int, int]
) -> np.ndarray:
    """files[i : i + n] decoded at size (read_resized); without a size they must share the
    first image's."""
    images = read_resized(files[i : i + n], size)
    if size is None and images.shape[1:3] != first:
        h, w = first
        h1, w1 = images.shape[1:3]
        raise VislabError(
            f"{files[i]} is {w1}x{h1} but {files[0].name} is {w}x{h}: images must share "
            "one size (set data.image_size to resize them all)"
        )
    return images


def fitting_batch(need: int, batch_size: int, what: str, remedy: str) -> int:
    """How many inputs of need bytes each one pass may take: batch_size, or fewer where the
    free memory holds fewer. An input that alone needs more than is free is refused, named
    by what and followed by remedy, before any is predicted."""
    free = available_memory()
    if need > free:
        raise VislabError(
            f"{what} needs about {need / 2**30:.1f} GiB to predict and {free / 2**30:.1f} GiB "
            f"of memory are free; {remedy}"
        )
    return max(1, min(batch_size, free // need))


@torch.inference_mode()
def predict_masks(
    members: list,
    images_dir: Path,
    out_dir: Path,
    *,
    batch_size: int,
    precision: str,
    tta: bool,
    fmt: str | None = None,
) -> int:
    """Write one mask per image of images_dir, xxxx.png, at the image's size, in the models'
    spec: fmt palette, rgb or index (DatasetSpec.write_mask), default the spec's own.
    members: (model, ModelMeta) pairs, one or an ensemble (same_classes) whose class
    probabilities are averaged per pixel.

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
            members,
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
    members: list,
    files: list[Path],
    ids: list[str],
    folder: Path,
    *,
    batch_size: int,
    precision: str,
    tta: bool,
    fmt: str | None,
) -> None:
    members = [(prepare(model), meta) for model, meta in members]
    metas = [meta for _, meta in members]
    spec = metas[0].spec()
    steps = Steps(len(files), "predict", "tiles")
    for i in range(0, len(files), batch_size):
        chunk = [read_rgb(p) for p in files[i : i + batch_size]]
        groups = _groups(chunk, files[i : i + batch_size], metas)
        preds = []
        for g in groups:
            batch = to_nchw(np.stack(g))
            total = None
            for model, meta in members:
                (x,) = model_inputs(model, batch, meta.mean, meta.std, len(g))
                with autocast(precision, x.device):
                    logits = tile_logits(model, x, meta, tta, batch_size).float()
                # one model: its logits' argmax; an ensemble: the mean of the probabilities
                scores = logits if len(members) == 1 else logits.softmax(1).cpu()
                total = scores if total is None else total + scores
            preds += list(total.argmax(1).to(torch.uint8).cpu().numpy())
        for tile, pred in zip(ids[i : i + batch_size], preds):
            spec.write_mask(pred, folder / f"{tile}.png", fmt)
        steps.step(len(chunk))
    steps.close()


def _groups(chunk: list[np.ndarray], files: list[Path], metas: list[ModelMeta]) -> list[list]:
    """The decoded tiles of chunk in the groups predicted in one pass: all of them when they
    are one size and fit in the free memory together, else one at a time. A tile that alone
    needs more memory than is free is refused, named, before any of it is predicted. An
    ensemble needs its largest model's bytes and its sum of probabilities."""
    k = metas[0].num_classes
    extra = 4 * k if len(metas) > 1 else 0
    needs = [
        max(predict_bytes(c.shape[0], c.shape[1], m) for m in metas) + extra * c[..., 0].size
        for c in chunk
    ]
    remedy = "cut it into smaller tiles"
    fits = [
        fitting_batch(need, len(chunk), f"{path}: a {c.shape[1]}x{c.shape[0]} tile", remedy)
        for path, c, need in zip(files, chunk, needs)
    ]
    if len({c.shape for c in chunk}) == 1 and min(fits) == len(chunk):
        return [chunk]
    return [[c] for c in chunk]


def predict_bytes(h: int, w: int, meta: ModelMeta) -> int:
    """About the most memory predicting one h x w image holds. A segmenter's tile
    (forward.tile_logits): the decoded tile and its normalised copy, the rescaled copy with
    the window logits summed at the model's scale, the logits resized back to h x w and their
    argmax; the model's own activations are bounded by the window and left out. A
    classifier's image (predict_classes): decoded, then at the model's input size its
    resized and NCHW copies, the normalised floats with normalize's temporary, a
    channels_last (or mirrored) copy, and the layers' activations."""
    if meta.task == "classification":
        sh, sw = meta.image_size or (h, w)
        return h * w * 3 + sh * sw * (3 + 3 + 24 + 12 + CLASSIFIER_ACTIVATIONS)
    k = meta.num_classes
    if meta.scale is not None:
        sh, sw = max(1, round(h * meta.scale[0])), max(1, round(w * meta.scale[1]))
    else:
        sh, sw = meta.image_size or (h, w)
    # bytes a pixel: uint8 RGB twice, float RGB with normalize's temporary, K float logits,
    # an int64 and a uint8 class; at the model's scale: float RGB, K float sums and a count
    return h * w * (3 + 3 + 24 + 4 * k + 9) + sh * sw * (12 + 4 * k + 4)


def predict_folder(
    ckpts: list[Path],
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
    """Predict every image of images_dir with the checkpoints (or their exports, see
    export.model_file) on device (devices.DEVICES): one model, or an ensemble of several
    that predict one task's same classes; returns the number of images and the engines
    that ran them, with the device. fmt: a segmenter's mask format (MASK_FORMATS), default
    its spec's."""
    from vislab.infer.export import model_file
    from vislab.tasks import task_spec

    dev = resolve_device(device)
    check_precision(precision, dev)
    set_threads(threads)
    members = [load_model(model_file(c, engine, dev), device=dev) for c in ckpts]
    same_classes(ckpts, [meta for _, meta in members])
    engines = sorted({"onnxruntime" if meta.format == "onnx" else "pytorch" for _, meta in members})
    ran = f"{' + '.join(engines)} on {dev}"
    if "onnxruntime" in engines and precision != "32":
        raise VislabError(
            f"--precision {precision} is for PyTorch models; an ONNX model runs in fp32"
        )
    task = members[0][1].task
    batch_size = batch_size or task_spec(task).predict_batch
    with memory_named(f"predicting {images_dir}"):
        if task == "segmentation":
            n = predict_masks(
                members,
                images_dir,
                out,
                batch_size=batch_size,
                precision=precision,
                tta=tta,
                fmt=fmt,
            )
        elif fmt is not None:
            raise VislabError(f"--format is for a segmenter's masks; {ckpts[0]} is a classifier")
        else:
            n = predict_classes(
                members, images_dir, out, batch_size=batch_size, precision=precision, tta=tta
            )
    return n, ran


def same_classes(ckpts: list[Path], metas: list[ModelMeta], option: str = "--ckpt") -> None:
    """Models that predict as an ensemble share their task and classes (a segmenter's whole
    data set spec: the masks are written in it); the first that does not is named, after the
    option that gave it."""
    first = metas[0]
    for ckpt, meta in zip(ckpts[1:], metas[1:]):
        if meta.task != first.task:
            raise VislabError(
                f"{option} {ckpt} is a {meta.task} model and {ckpts[0]} a {first.task} "
                "model: an ensemble predicts one task"
            )
        theirs, ours = (
            (meta.spec(), first.spec())
            if first.task == "segmentation"
            else (meta.classes, first.classes)
        )
        if theirs != ours:
            what = "data set spec (classes, colours)" if first.task == "segmentation" else "classes"
            raise VislabError(
                f"{option} {ckpt} predicts other {what} than {ckpts[0]}: an ensemble "
                "averages the probabilities of the same classes"
            )
