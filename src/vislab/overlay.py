"""The course's mask overlay, vectorised (no torch).

For each class present: tint its region with the class colour at alpha 0.3, then paint an
inner edge band 5 pixels wide in the solid class colour. A pixel is in the band when a pixel of
another class lies within 5 pixels of it along its row or its column; the image border is not
an edge. The course's version loops over pixels (0.4-0.7 s a tile); this one shifts the whole
mask 20 times.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vislab.data.landcover import COLORS, read_mask
from vislab.errors import VislabError

ALPHA = 0.3
EDGE_WIDTH = 5


def edge_band(mask: np.ndarray, width: int = EDGE_WIDTH) -> np.ndarray:
    """(H, W) bool: pixels with a pixel of another class within `width` along row or column."""
    edge = np.zeros(mask.shape, dtype=bool)
    for d in range(1, width + 1):
        # compare each pixel with the one d away; pairs that would cross the border are skipped
        diff_rows = mask[d:, :] != mask[:-d, :]
        edge[d:, :] |= diff_rows
        edge[:-d, :] |= diff_rows
        diff_cols = mask[:, d:] != mask[:, :-d]
        edge[:, d:] |= diff_cols
        edge[:, :-d] |= diff_cols
    return edge


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 image and (H, W) class indices -> (H, W, 3) uint8 overlay."""
    if image.shape[:2] != mask.shape:
        (ih, iw), (mh, mw) = image.shape[:2], mask.shape
        raise VislabError(f"image is {iw}x{ih} but mask is {mw}x{mh}")
    color = COLORS[mask].astype(np.float64)
    out = (1 - ALPHA) * image.astype(np.float64) + ALPHA * color
    edge = edge_band(mask)
    out[edge] = color[edge]
    return np.round(out).astype(np.uint8)


def overlay_file(image_path: Path, mask_path: Path, out_path: Path) -> None:
    from vislab.data.images import read_rgb

    image = read_rgb(image_path)
    mask, _ = read_mask(mask_path, size=image.shape[:2])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay(image, mask)).save(out_path)


def pair_overlay_folders(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path, str]]:
    """(image, mask, id) for each xxxx_sat.jpg of image_dir with xxxx_mask.png or xxxx.png."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    images = sorted(image_dir.glob("*_sat.jpg"))
    if not images:
        raise VislabError(f"no satellite tiles (*_sat.jpg) in {image_dir}")
    pairs, missing = [], []
    for img in images:
        tile = img.name[: -len("_sat.jpg")]
        for name in (f"{tile}_mask.png", f"{tile}.png"):
            if (mask_dir / name).is_file():
                pairs.append((img, mask_dir / name, tile))
                break
        else:
            missing.append(tile)
    if missing:
        raise VislabError(
            f"{mask_dir} has no mask ({missing[0]}_mask.png or {missing[0]}.png) for "
            f"{len(missing)} tile(s), e.g. {', '.join(missing[:3])}"
        )
    return pairs
