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

from vislab.course.landcover import read_mask, warn_red
from vislab.data.images import read_rgb, visible
from vislab.errors import VislabError

SAT, MASK = "_sat.jpg", "_mask.png"  # the course's names, as messages spell them
SAT_SUFFIXES = (".jpg", ".jpeg")


@dataclass
class TileSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    masks: np.ndarray | None  # (N, H, W) uint8 class indices, None for unlabeled sets
    ids: list[str]  # "0013" for 0013_sat.jpg


def sat_tiles(folder: Path) -> dict[str, Path]:
    """The satellite tiles of folder by id, sorted: every visible .jpg / .jpeg file, in any
    case; ``xxxx_sat.jpg`` and ``xxxx.jpg`` both have id ``xxxx``. The one rule of training,
    prediction and progress; two files of one id are refused, naming both."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VislabError(f"not a folder: {folder}")
    tiles: dict[str, Path] = {}
    for path in visible(folder):
        if path.suffix.lower() not in SAT_SUFFIXES or not path.is_file():
            continue
        stem = path.stem
        tile = stem[: -len("_sat")] if stem.lower().endswith("_sat") else stem
        if tile in tiles:
            raise VislabError(
                f"{tiles[tile]} and {path.name} are both tile {tile}: keep one of them"
            )
        tiles[tile] = path
    if not tiles:
        raise VislabError(f"no satellite tiles (*{SAT}, .jpg or .jpeg) in {folder}")
    return dict(sorted(tiles.items()))


def find_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """(tile, mask) files of folder by id, sorted: each tile of sat_tiles with its
    xxxx_mask.png (the suffix in any case)."""
    folder = Path(folder)
    tiles = sat_tiles(folder)
    masks = {p.name.lower(): p for p in visible(folder) if p.name.lower().endswith(MASK)}
    pairs = {i: (p, masks.get((i + MASK).lower())) for i, p in tiles.items()}
    missing = [i for i, (_, mask) in pairs.items() if mask is None]
    if missing:
        raise VislabError(
            f"{tiles[missing[0]]} has no mask {missing[0] + MASK}"
            + (f" ({len(missing)} tiles without masks)" if len(missing) > 1 else "")
        )
    return pairs


def _resize_mask(index: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(index).resize((size, size), Image.NEAREST))


def _load_pair(sat: Path, mask_file: Path, size: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    image = read_rgb(sat)
    mask, red = read_mask(mask_file, size=image.shape[:2])
    if size is not None and image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        mask = _resize_mask(mask, size)
    return image, mask, red


def load_tiles(folder: Path, size: int | None = None, limit: int | None = None) -> TileSet:
    """Decode every pair of folder (the first `limit` ids when given)."""
    pairs = find_pairs(folder)
    ids = list(pairs)[:limit]
    with ThreadPoolExecutor(2) as pool:
        loaded = list(pool.map(lambda t: _load_pair(*pairs[t], size), ids))
    shapes = {im.shape for im, _, _ in loaded}
    if len(shapes) > 1:
        first = loaded[0][0].shape
        odd = next(t for t, (im, _, _) in zip(ids, loaded) if im.shape != first)
        raise VislabError(
            f"{pairs[odd][0]} differs in size from {pairs[ids[0]][0].name}: tiles must share "
            "one size (set data.image_size to resize them all)"
        )
    warn_red({pairs[t][1].name: red for t, (_, _, red) in zip(ids, loaded)})
    images = np.stack([im for im, _, _ in loaded])
    masks = np.stack([m for _, m, _ in loaded])
    return TileSet(images, masks, ids)


def load_sat_images(folder: Path) -> tuple[list[Path], list[str]]:
    """For prediction: the tiles of folder (sat_tiles) and their output ids, sorted by id;
    tile ``xxxx`` is written as ``xxxx.png``."""
    tiles = sat_tiles(folder)
    return list(tiles.values()), list(tiles)


def pixel_counts(masks: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes,) pixels of each class in (N, H, W) class-index masks, summed over chunks
    of 64 masks (a bincount of all of them at once would hold them as 8-byte integers)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for i in range(0, len(masks), 64):
        chunk = np.asarray(masks[i : i + 64]).reshape(-1)
        counts += np.bincount(chunk, minlength=num_classes)[:num_classes]
    return counts


def balanced_weights(counts: np.ndarray) -> list[float]:
    """Cross-entropy weights from the pixel share p of each class (counts per class): 1 /
    sqrt(p), scaled to mean 1 over the scored classes that occur. Unknown (not scored, 0.06% of
    the course's pixels) and absent classes weigh 1: 1 / sqrt(p) would make a near-empty class
    dominate."""
    from vislab.course.landcover import NUM_SCORED

    counts = np.asarray(counts)
    share = counts / counts.sum()
    weights = np.ones(len(counts))
    present = [c for c in range(min(NUM_SCORED, len(counts))) if share[c] > 0]
    raw = share[present] ** -0.5
    weights[present] = raw / raw.mean()
    return [round(float(w), 4) for w in weights]
