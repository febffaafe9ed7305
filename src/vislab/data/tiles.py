"""Segmentation tiles with their masks, in either layout a split folder may have:

- the course's: ``xxxx_sat.jpg`` and ``xxxx_mask.png`` pairs side by side;
- ``images/`` and ``masks/`` holding files of the same stems (images .png, .jpg, .jpeg,
  .bmp, .webp, .tif, .tiff; masks .png, .tif, .tiff; ``xxxx_mask.png`` pairs with ``xxxx``).

Masks are read through the data set spec (vislab/data/spec.py), which ``resolve_spec`` picks:
the recipe's, else the course's land-cover set for the course's layout. Pairs are decoded once
(two threads: Pillow releases the GIL while decoding) into one uint8 image array and one
class-index mask array. ``size`` downsizes both for CPU training: images bilinear, masks
nearest (class indices, the ignore index among them, are never blended).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from vislab.data.images import CHUNK_BYTES, IMAGE_SUFFIXES, read_rgb, visible
from vislab.data.spec import MASK_SUFFIXES, DatasetSpec, builtin_spec
from vislab.errors import VislabError

SAT, MASK = "_sat.jpg", "_mask.png"  # the course's names, as messages spell them
IMAGES, MASKS = "images", "masks"  # the sub-folders of the other layout


@dataclass
class TileSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    masks: np.ndarray | None  # (N, H, W) uint8 class indices, None for unlabeled sets
    ids: list[str]  # "0013" for 0013_sat.jpg


def _drop(stem: str, tag: str) -> str:
    """stem without its tag ("_sat", "_mask"), matched in any case."""
    return stem[: -len(tag)] if stem.lower().endswith(tag) else stem


def is_course_layout(folder: Path) -> bool:
    """True for a folder of the course's pairs: no images/ sub-folder, and files named
    ``*_sat.<image>`` or ``*_mask.png`` (in any case)."""
    folder = Path(folder)
    if (folder / IMAGES).is_dir():
        return False
    return any(
        p.name.lower().endswith(MASK)
        or (p.suffix.lower() in IMAGE_SUFFIXES and p.stem.lower().endswith("_sat"))
        for p in visible(folder)
    )


def sat_tiles(folder: Path) -> dict[str, Path]:
    """The tiles of folder by id, sorted: every visible image (.png, .jpg, .jpeg, .tif, .tiff,
    in any case) of folder, or of folder/images when it has one; ``xxxx_sat.jpg`` and
    ``xxxx.jpg`` both have id ``xxxx``; in the course's layout a ``*_mask.png`` is a mask, never
    a tile. The one rule of training, prediction and progress; two files of one id are
    refused, naming both."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VislabError(f"not a folder: {folder}")
    course = is_course_layout(folder)
    source = folder / IMAGES if (folder / IMAGES).is_dir() else folder
    tiles: dict[str, Path] = {}
    for path in visible(source):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if course and path.name.lower().endswith(MASK):
            continue
        tile = _drop(path.stem, "_sat")
        if tile in tiles:
            raise VislabError(
                f"{tiles[tile]} and {path.name} are both tile {tile}: keep one of them"
            )
        tiles[tile] = path
    if not tiles:
        raise VislabError(
            f"no satellite tiles (*{SAT}) or images ({', '.join(IMAGE_SUFFIXES)}) in {source}"
        )
    return dict(sorted(tiles.items()))


def _mask_files(folder: Path) -> dict[str, Path]:
    """The masks of a masks/ folder by id (lower case): ``xxxx.png`` and ``xxxx_mask.png`` are
    both the mask of ``xxxx``; two files of one id are refused, naming both."""
    if not folder.is_dir():
        raise VislabError(f"{folder.parent} has {IMAGES}/ but no {MASKS}/ beside it")
    masks: dict[str, Path] = {}
    for path in visible(folder):
        if path.suffix.lower() not in MASK_SUFFIXES or not path.is_file():
            continue
        key = _drop(path.stem, "_mask").lower()
        if key in masks:
            raise VislabError(f"{masks[key]} and {path.name} are both the mask of {key}")
        masks[key] = path
    return masks


def find_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """(tile, mask) files of folder by id, sorted: each tile of sat_tiles with its mask, the
    course's xxxx_mask.png beside it (the suffix in any case) or masks/xxxx.png (or .tif)."""
    folder = Path(folder)
    tiles = sat_tiles(folder)
    if (folder / IMAGES).is_dir():
        masks = _mask_files(folder / MASKS)
        pairs = {i: (p, masks.get(i.lower())) for i, p in tiles.items()}
        expected = f"{MASKS}/{{}}.png"
    else:
        masks = {p.name.lower(): p for p in visible(folder) if p.name.lower().endswith(MASK)}
        pairs = {i: (p, masks.get((i + MASK).lower())) for i, p in tiles.items()}
        expected = "{}" + MASK
    missing = [i for i, (_, mask) in pairs.items() if mask is None]
    if missing:
        raise VislabError(
            f"{tiles[missing[0]]} has no mask {expected.format(missing[0])}"
            + (f" ({len(missing)} tiles without masks)" if len(missing) > 1 else "")
        )
    return pairs


def resolve_spec(
    folder: Path,
    spec: str | None = None,
    classes: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    ignore_index: int = 255,
    mask_format: str = "auto",
) -> DatasetSpec:
    """The data set spec of a segmentation set (the recipe's data.spec, data.classes,
    data.palette, data.ignore_index, data.mask_format; folder: its train split): a built-in
    one by name, else the declared classes, else the course's land-cover set for the course's
    layout. Anything else must declare its classes."""
    if palette is not None and classes is None:
        raise VislabError(
            "config key data.palette: give data.classes too (the class names, one per colour)"
        )
    if spec is not None:
        if classes is not None:
            raise VislabError(
                f"config keys data.spec and data.classes: data.spec {spec} names its own "
                "classes; give one of the two"
            )
        return _builtin(spec, ignore_index, mask_format, f"data.spec {spec}")
    if classes is not None:
        return DatasetSpec(classes, palette, ignore_index, mask_format)
    if is_course_layout(folder):
        return _builtin("landcover", ignore_index, mask_format, "the course's layout")
    raise VislabError(
        f"{folder}: not the course's land-cover layout (xxxx{SAT} / xxxx{MASK}); set "
        "data.classes (the class names in index order), and data.palette for RGB masks"
    )


def _builtin(name: str, ignore_index: int, mask_format: str, why: str) -> DatasetSpec:
    """The built-in spec name, which brings its own ignore index and mask format: the
    recipe's data.ignore_index and data.mask_format, which only data.classes reads, must be
    left at their defaults."""
    for key, value, default in (
        ("ignore_index", ignore_index, 255),
        ("mask_format", mask_format, "auto"),
    ):
        if value != default:
            raise VislabError(
                f"config key data.{key}: {value!r} would go unused: {why} is read with the "
                f"built-in spec {name}, which has its own; data.{key} goes with data.classes"
            )
    return builtin_spec(name)


def _resize_mask(index: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(index).resize((size, size), Image.NEAREST))


def _load_pair(
    sat: Path, mask_file: Path, size: int | None, spec: DatasetSpec
) -> tuple[np.ndarray, np.ndarray, int]:
    image = read_rgb(sat)
    mask, ruled = spec.read_mask(mask_file, size=image.shape[:2])
    if size is not None and image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        mask = _resize_mask(mask, size)
    return image, mask, ruled


def load_tiles(
    folder: Path,
    size: int | None = None,
    limit: int | None = None,
    spec: DatasetSpec | None = None,
    store: str = "memory",
    processes: int = 1,
) -> TileSet:
    """Decode every pair of folder (the first `limit` ids when given), the masks through spec
    (default: resolve_spec's for a recipe that declares nothing), held as store says
    (data/store.py: memory, disk or auto; processes: how many would each hold them)."""
    from vislab.data.store import decoded_arrays, set_key

    pairs = find_pairs(folder)
    spec = resolve_spec(folder) if spec is None else spec
    ids = list(pairs)[:limit]

    def decode(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image, mask, ruled = _load_pair(*pairs[ids[i]], size, spec)
        return image, mask, np.asarray(ruled, dtype=np.int64)

    def mismatch(i: int, shape: tuple, first: tuple) -> str:
        return (
            f"{pairs[ids[i]][0]} differs in size from {pairs[ids[0]][0].name}: tiles must "
            "share one size (set data.image_size to resize them all)"
        )

    files = [f for t in ids for f in pairs[t]]
    settings = {"kind": "tiles", "size": size, "spec": spec.to_dict()}
    images, masks, ruled = decoded_arrays(
        len(ids),
        decode,
        ("images", "masks", "ruled"),
        store=store,
        key=lambda: set_key(files, settings),
        processes=processes,
        mismatch=mismatch,
    )
    spec.warn_rule({pairs[t][1].name: int(n) for t, n in zip(ids, ruled, strict=True)})
    return TileSet(images, masks, ids)


def load_sat_images(folder: Path) -> tuple[list[Path], list[str]]:
    """For prediction: the tiles of folder (sat_tiles) and their output ids, sorted by id;
    tile ``xxxx`` is written as ``xxxx.png``."""
    tiles = sat_tiles(folder)
    return list(tiles.values()), list(tiles)


def pixel_counts(masks: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes,) pixels of each class in (N, H, W) class-index masks (ignored pixels, of
    an index >= num_classes, not counted), summed over chunks of about 16 MB of pixels (a
    bincount of all of them at once would hold them as 8-byte integers)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    step = max(1, CHUNK_BYTES // max(1, masks[0].size)) if len(masks) else 1
    for i in range(0, len(masks), step):
        chunk = np.asarray(masks[i : i + step]).reshape(-1)
        counts += np.bincount(chunk, minlength=num_classes)[:num_classes]
    return counts


def balanced_weights(counts: np.ndarray, scored: Sequence[int] | None = None) -> list[float]:
    """Cross-entropy weights from the pixel share p of each class (counts per class): 1 /
    sqrt(p), scaled to mean 1 over the scored classes (default: all) that occur. Classes not
    scored (the course's unknown, 0.06% of its pixels) and absent ones weigh 1: 1 / sqrt(p)
    would make a near-empty class dominate."""
    counts = np.asarray(counts)
    share = counts / counts.sum()
    weights = np.ones(len(counts))
    scored = range(len(counts)) if scored is None else scored
    present = [c for c in scored if c < len(counts) and share[c] > 0]
    raw = share[present] ** -0.5
    weights[present] = raw / raw.mean()
    return [round(float(w), 4) for w in weights]
