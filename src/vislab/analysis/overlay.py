"""Masks drawn over their tiles in a data set spec's colours: the course's overlay
(viz_mask.py), vectorised, equal to it pixel for pixel for its land-cover set (no torch).

For each class present, in class order: tint its region with the class colour at alpha 0.3,
then paint its edge band in the solid colour; the float image is truncated to uint8 at the end
(``np.uint8``). The course's band has three accidents, kept by default so that the overlays
equal its own: below a region it is 1 pixel deep, not 5 (the loop meant to widen it compares
with ``==`` where it meant to assign); column 0 gets no vertical edges (its loop starts at
column 1); and the 5-pixel band on the other sides takes any pixel of the region within 5 of
the edge, joined to it or not. ``full_band=True`` draws what was meant: every pixel with a
pixel of another class within 5 along its row or column, on all four sides. The course's
script loops over pixels (several seconds a tile); this one shifts whole masks. Pixels of the
spec's ignore index belong to no class and are left as they are.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from vislab.data.spec import DatasetSpec, builtin_spec
from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, refuse_writing_over_inputs, require_file, special_file

ALPHA = 0.3
EDGE_WIDTH = 5


def course_edges(region: np.ndarray, width: int = EDGE_WIDTH) -> np.ndarray:
    """viz_mask.py's mask_edge_detection of one class's (H, W) bool region."""
    h, w = region.shape
    enter, leave = np.zeros((h, w), bool), np.zeros((h, w), bool)
    enter[:, 1:] = region[:, 1:] & ~region[:, :-1]  # the region starts at column j
    leave[:, 1:] = ~region[:, 1:] & region[:, :-1]  # it ended at column j - 1
    down, up = np.zeros((h, w), bool), np.zeros((h, w), bool)  # column 0 left out, as there
    down[1:, 1:] = region[1:, 1:] & ~region[:-1, 1:]  # it starts at row i
    up[1:, 1:] = ~region[1:, 1:] & region[:-1, 1:]  # it ended at row i - 1
    edge = np.zeros((h, w), bool)
    for a in range(width):
        edge[:, a:] |= enter[:, : w - a]  # columns j .. j + width - 1
        edge[:, : w - 1 - a] |= leave[:, 1 + a :]  # columns j - 1 .. j - width
        edge[a:, :] |= down[: h - a, :]  # rows i .. i + width - 1
    edge[:-1, :] |= up[1:, :]  # row i - 1 only
    return edge & region


def full_band(mask: np.ndarray, width: int = EDGE_WIDTH) -> np.ndarray:
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


def overlay(
    image: np.ndarray, mask: np.ndarray, full: bool = False, colors: np.ndarray | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 image and (H, W) class indices -> (H, W, 3) uint8 overlay in colors
    ((K, 3), one per class; default the course's); the float steps are the course's own, so
    that its truncation gives the same bytes. Indices of no class (the ignore index) are not
    drawn."""
    if image.shape[:2] != mask.shape:
        (ih, iw), (mh, mw) = image.shape[:2], mask.shape
        raise VislabError(f"image is {iw}x{ih} but mask is {mw}x{mh}")
    colors = builtin_spec("landcover").colors if colors is None else np.asarray(colors)
    out = image.astype(np.float64)
    band = full_band(mask) if full else None
    present = np.flatnonzero(np.bincount(mask.ravel(), minlength=len(colors))[: len(colors)])
    for c in present:
        region = mask == c
        edge = band & region if full else course_edges(region)
        color = colors[c].astype(np.float64)
        out[region] = out[region] * (1 - ALPHA) + color * ALPHA
        out[edge] = color
    return out.astype(np.uint8)  # truncation, as np.uint8(img) in viz_mask.py


def overlay_file(
    image_path: Path,
    mask_path: Path,
    out_path: Path,
    full: bool = False,
    spec: DatasetSpec | None = None,
) -> int:
    """Write the overlay of one tile, the mask read and drawn through spec (default the
    course's); returns the number of the mask's pixels its rule read (the course's red)."""
    from vislab.data.images import read_rgb

    spec = spec or builtin_spec("landcover")
    image = read_rgb(image_path)
    mask, ruled = spec.read_mask(mask_path, size=image.shape[:2])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fmt = Image.registered_extensions().get(out_path.suffix.lower(), "PNG")
    Image.fromarray(overlay(image, mask, full, spec.colors)).save(buf, format=fmt)
    atomic_write_bytes(out_path, buf.getvalue())
    return ruled


def pair_overlay_folders(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path, str]]:
    """(image, mask, id) for each tile of image_dir (data/tiles.py's naming rule: any image
    suffix, its images/ sub-folder when it has one) with xxxx_mask.png or xxxx.png (.tif,
    .tiff) in mask_dir, or in its masks/ sub-folder when it has one."""
    from vislab.data.spec import MASK_SUFFIXES
    from vislab.data.tiles import sat_tiles

    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    if not mask_dir.is_dir():
        what = special_file(mask_dir) or ("a file" if mask_dir.exists() else "missing")
        raise VislabError(
            f"--image {image_dir} is a folder, so --mask must be the folder of its masks; "
            f"{mask_dir} is {what}"
        )
    if (mask_dir / "masks").is_dir():
        mask_dir = mask_dir / "masks"
    pairs, missing = [], []
    for tile, img in sat_tiles(image_dir).items():
        names = [f"{tile}{tag}{ext}" for tag in ("_mask", "") for ext in MASK_SUFFIXES]
        special = next((mask_dir / n for n in names if special_file(mask_dir / n)), None)
        if special:
            raise VislabError(
                f"{special} is {special_file(special)}, not a mask: vislab reads regular files "
                "only (move it out of the folder)"
            )
        found = [mask_dir / n for n in names if (mask_dir / n).is_file() and mask_dir / n != img]
        if found:
            pairs.append((img, found[0], tile))
        else:
            missing.append(tile)
    if missing:
        raise VislabError(
            f"{mask_dir} has no mask ({missing[0]}_mask.png or {missing[0]}.png) for "
            f"{len(missing)} tile(s), e.g. {', '.join(missing[:3])}"
        )
    return pairs


def overlay_jobs(image: Path, mask: Path, out: Path) -> list[tuple[Path, Path, Path]]:
    """(image, mask, output) of each overlay of `vislab overlay`: one file, or a folder's
    tiles written as OUT/xxxx.png. An output that would replace an input is refused before
    anything is written."""
    image, mask, out = Path(image), Path(mask), Path(out)
    if image.is_dir():
        jobs = [(i, m, out / f"{t}.png") for i, m, t in pair_overlay_folders(image, mask)]
    else:  # named before anything opens them: a FIFO or a device would block the read
        require_file(image, "tile")
        require_file(mask, "mask")
        jobs = [(image, mask, out)]
    refuse_writing_over_inputs(
        [("--out", o) for _, _, o in jobs], [p for i, m, _ in jobs for p in (i, m)], [image, mask]
    )
    return jobs
