"""Small generated image sets for tests and the demo (no download, no real data needed).

Each class is a colour grating at its own orientation and frequency, with a random phase,
brightness jitter and pixel noise: easy for a CNN, impossible for a constant guess.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def grating_images(
    num_classes: int, per_class: int, size: int = 32, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) uint8 images and (N,) labels, class-major order."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # the class colours are fixed, so that sets drawn with different seeds agree
    palette = np.random.default_rng(12345).uniform(0.2, 1.0, size=(num_classes, 3))
    images, labels = [], []
    for c in range(num_classes):
        angle = np.pi * c / num_classes
        freq = 2.0 + (c % 3)
        for _ in range(per_class):
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
            img = 0.5 + 0.35 * wave[..., None] * palette[c] * rng.uniform(0.8, 1.2)
            img = img + rng.normal(0, 0.08, size=img.shape)
            images.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
            labels.append(c)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def write_flat_folder(
    folder: Path, num_classes: int, per_class: int, size: int = 32, seed: int = 0, start: int = 0
) -> list[str]:
    """Write {label}_{id}.png files (the course layout); returns the file names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = grating_images(num_classes, per_class, size, seed)
    names = []
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        name = f"{label}_{start + i % per_class}.png"
        Image.fromarray(img).save(folder / name)
        names.append(name)
    return names


def write_p1_layout(root: Path, num_classes: int = 4, per_class: int = 16, size: int = 32) -> Path:
    """A tiny copy of the course's p1_data layout: train_50/, val_50/ and val_gt.csv."""
    root = Path(root)
    write_flat_folder(root / "train_50", num_classes, per_class, size, seed=1)
    val_per = max(2, per_class // 4)
    names = write_flat_folder(root / "val_50", num_classes, val_per, size, seed=2, start=per_class)
    rows = ["filename,label"] + [f"{n},{n.split('_')[0]}" for n in sorted(names)]
    (root / "val_gt.csv").write_text("\n".join(rows) + "\n")
    return root


def landcover_tiles(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 3) uint8 'satellite' images and (n, size, size) class-index masks.

    Each tile is a Voronoi partition into regions of classes 0..5 (rarely 6, unknown); each
    class has its own mean colour and texture, so the mask can be read off the image."""
    from vislab.course.landcover import COLORS

    rng = np.random.default_rng(seed)
    tint = (COLORS.astype(np.float32) * 0.5 + 64) / 255
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        k = int(rng.integers(3, 8))
        centers = rng.uniform(0, size, size=(k, 2))
        classes = rng.choice(7, size=k, p=[0.17, 0.3, 0.15, 0.15, 0.1, 0.12, 0.01])
        d = (yy[..., None] - centers[:, 0]) ** 2 + (xx[..., None] - centers[:, 1]) ** 2
        mask = classes[d.argmin(-1)].astype(np.uint8)
        stripes = np.sin((xx + yy * (mask % 3)) * (0.5 + 0.2 * mask))[..., None]
        img = tint[mask] + 0.06 * stripes + rng.normal(0, 0.05, size=(size, size, 3))
        images[i] = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        masks[i] = mask
    return images, masks


def write_tile_folder(folder: Path, n: int, size: int = 64, seed: int = 0) -> list[str]:
    """Write xxxx_sat.jpg / xxxx_mask.png pairs (the course's p2 layout); returns the ids."""
    from vislab.course.landcover import write_mask

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, masks = landcover_tiles(n, size, seed)
    ids = [f"{i:04d}" for i in range(n)]
    for tile, img, mask in zip(ids, images, masks, strict=True):
        Image.fromarray(img).save(folder / f"{tile}_sat.jpg", quality=95)
        write_mask(mask, folder / f"{tile}_mask.png")
    return ids


def write_p2_layout(root: Path, n_train: int = 16, n_val: int = 4, size: int = 64) -> Path:
    """A tiny copy of the course's p2_data layout: train/ and validation/."""
    root = Path(root)
    write_tile_folder(root / "train", n_train, size, seed=1)
    write_tile_folder(root / "validation", n_val, size, seed=2)
    return root


# A small segmentation set that is not the course's: its own 3 classes, palette-mode index
# masks in the images/ + masks/ layout, and a 1-pixel ring of ignored pixels (255) around
# each building, as Pascal VOC leaves object boundaries to no class.
# configs/own_segmentation_example.yaml declares the same classes and colours.
SCENE_CLASSES = ("background", "road", "building")
SCENE_PALETTE = ((120, 170, 90), (128, 128, 128), (200, 60, 40))
SCENE_IGNORE = 255


def _roads(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) bool: one or two straight roads, 3-6 pixels wide, across the tile."""
    road = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(1, 3))):
        width = int(rng.integers(3, 7))
        at = int(rng.integers(0, size - width))
        if rng.random() < 0.5:
            road[at : at + width, :] = True
        else:
            road[:, at : at + width] = True
    return road


def _buildings(rng: np.random.Generator, road: np.ndarray) -> np.ndarray:
    """(size, size) bool: up to seven rectangular buildings, each clear of the roads by a
    pixel."""
    size = road.shape[0]
    building = np.zeros_like(road)
    for _ in range(int(rng.integers(3, 8))):
        h, w = (int(v) for v in rng.integers(6, 15, size=2))
        y, x = int(rng.integers(1, size - h - 1)), int(rng.integers(1, size - w - 1))
        if not road[y - 1 : y + h + 1, x - 1 : x + w + 1].any():
            building[y : y + h, x : x + w] = True
    return building


def _ring(inside: np.ndarray) -> np.ndarray:
    """The pixels next to inside (4-neighbours) that are not inside."""
    grown = inside.copy()
    grown[1:] |= inside[:-1]
    grown[:-1] |= inside[1:]
    grown[:, 1:] |= inside[:, :-1]
    grown[:, :-1] |= inside[:, 1:]
    return grown & ~inside


def scene_tiles(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 3) uint8 aerial-looking images and (n, size, size) uint8 index masks:
    0 background (grass), 1 road (grey asphalt), 2 building (red roofs), 255 the ignored ring
    around each building (its shadow in the image)."""
    rng = np.random.default_rng(seed)
    tint = np.array([[0.33, 0.5, 0.24], [0.47, 0.47, 0.5], [0.66, 0.3, 0.2]], dtype=np.float32)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        road = _roads(rng, size)
        building = _buildings(rng, road)
        mask = np.where(building, 2, np.where(road, 1, 0)).astype(np.uint8)
        ring = _ring(building) & (mask == 0)
        img = tint[mask] * rng.uniform(0.85, 1.15)
        img[ring] *= 0.55  # a shadow: neither roof nor grass to the eye
        img = img + rng.normal(0, 0.04, size=img.shape)
        mask[ring] = SCENE_IGNORE
        images[i] = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        masks[i] = mask
    return images, masks


def write_scene_split(folder: Path, n: int, size: int = 64, seed: int = 0) -> list[str]:
    """Write folder/images/xxxx.png and folder/masks/xxxx.png (palette-mode, in
    SCENE_PALETTE); returns the ids."""
    from vislab.data.spec import DatasetSpec

    spec = DatasetSpec(SCENE_CLASSES, SCENE_PALETTE, SCENE_IGNORE)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    images, masks = scene_tiles(n, size, seed)
    ids = [f"{i:04d}" for i in range(n)]
    for tile, img, mask in zip(ids, images, masks, strict=True):
        Image.fromarray(img).save(folder / "images" / f"{tile}.png")
        spec.write_mask(mask, folder / "masks" / f"{tile}.png", "palette")
    return ids


def write_scene_layout(root: Path, n_train: int = 48, n_val: int = 8, size: int = 64) -> Path:
    """A data set of its own: root/train and root/val, each images/ + masks/."""
    root = Path(root)
    write_scene_split(root / "train", n_train, size, seed=1)
    write_scene_split(root / "val", n_val, size, seed=2)
    return root
