"""Satellite tiles with their masks: folders of ``xxxx_sat.jpg`` and ``xxxx_mask.png`` pairs.

Pairs are decoded once (two threads: Pillow releases the GIL while decoding) into one uint8
image array and one class-index mask array. ``size`` downsizes both for CPU training: images
bilinear, masks nearest (class indices are never blended).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vislab.data.images import read_rgb
from vislab.data.landcover import read_mask, warn_red
from vislab.errors import VislabError

SAT, MASK = "_sat.jpg", "_mask.png"


@dataclass
class TileSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    masks: np.ndarray | None  # (N, H, W) uint8 class indices, None for unlabeled sets
    ids: list[str]  # "0013" for 0013_sat.jpg


def find_pairs(folder: Path) -> list[str]:
    """Ids of the xxxx_sat.jpg files of folder, sorted; each must have its xxxx_mask.png."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VislabError(f"not a folder: {folder}")
    ids = sorted(p.name[: -len(SAT)] for p in folder.glob("*" + SAT))
    if not ids:
        raise VislabError(f"no satellite tiles (*{SAT}) in {folder}")
    missing = [i for i in ids if not (folder / (i + MASK)).is_file()]
    if missing:
        raise VislabError(
            f"{folder / (missing[0] + SAT)} has no mask {missing[0] + MASK}"
            + (f" ({len(missing)} tiles without masks)" if len(missing) > 1 else "")
        )
    return ids


def _resize_mask(index: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(index).resize((size, size), Image.NEAREST))


def _load_pair(folder: Path, tile: str, size: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    image = read_rgb(folder / (tile + SAT))
    mask, red = read_mask(folder / (tile + MASK), size=image.shape[:2])
    if size is not None and image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        mask = _resize_mask(mask, size)
    return image, mask, red


def load_tiles(folder: Path, size: int | None = None, limit: int | None = None) -> TileSet:
    """Decode every pair of folder (the first `limit` ids when given)."""
    folder = Path(folder)
    ids = find_pairs(folder)[:limit]
    with ThreadPoolExecutor(2) as pool:
        loaded = list(pool.map(lambda t: _load_pair(folder, t, size), ids))
    shapes = {im.shape for im, _, _ in loaded}
    if len(shapes) > 1:
        first = loaded[0][0].shape
        odd = next(t for t, (im, _, _) in zip(ids, loaded) if im.shape != first)
        raise VislabError(
            f"{folder / (odd + SAT)} differs in size from {ids[0] + SAT}: tiles must share one "
            "size (set data.image_size to resize them all)"
        )
    warn_red({t + MASK: red for t, (_, _, red) in zip(ids, loaded)})
    images = np.stack([im for im, _, _ in loaded])
    masks = np.stack([m for _, m, _ in loaded])
    return TileSet(images, masks, ids)


def load_sat_images(folder: Path) -> tuple[list[Path], list[str]]:
    """For prediction: the .jpg files of folder (sorted) and their output ids.

    ``xxxx_sat.jpg`` and ``xxxx.jpg`` both give id ``xxxx`` (written as ``xxxx.png``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VislabError(f"not a folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise VislabError(f"no .jpg images in {folder}")
    ids = [p.stem[: -len("_sat")] if p.stem.endswith("_sat") else p.stem for p in files]
    return files, ids
