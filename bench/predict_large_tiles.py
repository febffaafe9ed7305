"""`vislab predict` on tiles larger than the training's: sliding windows at the training's
scale against resizing each tile whole (what predict did before), on the course's validation
tiles at 512x512 and on mosaics of them, 2x2 (1024x1024) and 2x3 (1024x1536), assembled with
their masks in a temporary folder.

Three ways, each predict_masks end to end (decode, predict, write the PNGs; timed), then the
written masks scored with the course's mIoU over all pixels:

- resize: the tile resized whole to the training size (the metadata without scale and window);
- rescale: the tile rescaled by the training's factor, kept whole (one window as large as it);
- slide: the tile rescaled by the training's factor, in overlapping windows of the training
  size (the default for checkpoints that record scale and window).

A checkpoint written before its metadata recorded scale and window has them re-created from
its recipe (data.image_size, data.crop_size) and the validation tiles' size.

    python bench/predict_large_tiles.py --ckpt runs/p2_lite/checkpoints/best.ckpt \
        --data ../shared/data/dlcv-p2/validation [--threads 2] [--limit 24]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vislab.course.landcover import LANDCOVER
from vislab.data.tiles import load_tiles
from vislab.infer.checkpoint import load_model
from vislab.infer.meta import ModelMeta, slide_fields
from vislab.infer.predict import predict_masks
from vislab.metrics.miou import confusion, scores
from vislab.runtime import set_threads

MOSAICS = {"1024x1024": (2, 2), "1024x1536": (2, 3)}  # rows x columns of validation tiles


def with_windows(meta: ModelMeta, tile: list[int]) -> ModelMeta:
    """meta with scale and window; re-created from its recipe when it predates them."""
    if meta.scale is not None:
        return meta
    data = (meta.config or {}).get("data", {})
    tiles = tile if data.get("image_size") else None
    return dataclasses.replace(meta, **slide_fields(meta.image_size, tiles, data.get("crop_size")))


def write_mosaics(images, masks, rows: int, cols: int, folder: Path) -> np.ndarray:
    """Mosaics of rows x cols consecutive tiles as folder/xxxx.png (PNG: the decoded JPEG's
    pixels, no second loss; 1 x 1 is the tiles themselves); returns their (N, H, W) truth."""
    folder.mkdir(parents=True)
    n = rows * cols
    truth = []
    for m in range(len(images) // n):
        block = slice(m * n, (m + 1) * n)
        image = _grid(images[block], rows, cols)
        Image.fromarray(image).save(folder / f"{m:04d}.png")
        truth.append(_grid(masks[block], rows, cols))
    return np.stack(truth)


def _grid(tiles: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.concatenate(
        [np.concatenate(list(tiles[r * cols : (r + 1) * cols]), axis=1) for r in range(rows)]
    )


def run(model, meta: ModelMeta, images: Path, truth: np.ndarray, out: Path, batch: int):
    """(mIoU, seconds) of predict_masks over a folder, its masks scored against truth."""
    start = time.perf_counter()
    predict_masks([(model, meta)], images, out, batch_size=batch, precision="32", tta=False)
    took = time.perf_counter() - start
    cm = np.zeros((LANDCOVER.num_classes,) * 2, dtype=np.int64)
    for i, path in enumerate(sorted(out.glob("*.png"))):
        pred, _ = LANDCOVER.read_mask(path, size=truth[i].shape)
        cm += confusion(truth[i], pred, LANDCOVER.num_classes)
    return scores(cm, LANDCOVER)["miou"], took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="the course's validation folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4, help="tiles (and windows) per pass")
    ap.add_argument("--limit", type=int, help="the first N validation tiles only")
    args = ap.parse_args()
    set_threads(args.threads)
    model, meta = load_model(args.ckpt)
    val = load_tiles(args.data, limit=args.limit, spec=LANDCOVER)
    tile = list(val.images.shape[1:3])
    slide = with_windows(meta, tile)
    ways = {
        "resize": dataclasses.replace(meta, scale=None, window=None),
        "rescale": dataclasses.replace(slide, window=[1 << 14, 1 << 14]),
        "slide": slide,
    }
    print(
        f"{args.ckpt}: {meta.model} trained at {meta.image_size}, scale {slide.scale}, "
        f"window {slide.window}; {args.threads} thread(s)"
    )
    print("| tiles | n | way | mIoU | seconds | s/tile |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {}
        for name, (rows, cols) in {f"{tile[0]}x{tile[1]}": (1, 1), **MOSAICS}.items():
            folder = tmp / name
            sets[name] = (folder, write_mosaics(val.images, val.masks, rows, cols, folder))
        for name, (folder, truth) in sets.items():
            for way, m in ways.items():
                miou, took = run(model, m, folder, truth, tmp / f"out-{name}-{way}", args.batch)
                print(
                    f"| {name} | {len(truth)} | {way} | {miou:.4f} | {took:.1f} | "
                    f"{took / len(truth):.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
