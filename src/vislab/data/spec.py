"""A segmentation data set's classes, colours, ignore index and mask format, declared once.

The spec is what every consumer of masks reads: training (the loss's ignore index, the metrics'
classes), `vislab predict` (the colours it writes), `evaluate`, `overlay`, `progress` and the
report. A recipe declares it with the keys ``data.classes``, ``data.palette``,
``data.ignore_index`` and ``data.mask_format``, or names a built-in one with ``data.spec``
(the course's land-cover code, ``vislab/course/landcover.py``); the run folder's config, each
checkpoint's metadata, exports and a submission carry it, as ``to_dict()``.

Mask formats (as MMSegmentation and torchgeo read them):

- ``index``: single-channel masks (``L`` or palette-mode ``P`` PNG/TIFF) whose values are the
  class indices; ``ignore_index`` (default 255) marks pixels that no loss or metric counts;
- ``rgb``: RGB masks, one exact colour per class (``palette``), ignored pixels in the VOC
  colour map's colour of the ignore index ([224, 224, 192] for 255, VOC's boundaries); any
  other colour is an error naming the file and the colour;
- ``auto`` (default): ``L`` and ``P`` files as ``index``, RGB and RGBA files as ``rgb``.

No torch here, and nothing newer than Python 3.8: a submission folder ships this module.
"""

from __future__ import annotations

import importlib
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vislab.errors import VislabError

MASK_FORMATS = ("auto", "rgb", "index")
MASK_SUFFIXES = (".png", ".tif", ".tiff")  # the files a mask may be
# built-in specs by name: "module:attribute", imported when asked for
BUILTIN = {"landcover": "vislab.course.landcover:LANDCOVER"}


def default_palette(n: int) -> list[tuple[int, int, int]]:
    """The Pascal VOC colour map (the bits of the index spread over R, G and B): distinct,
    reproducible colours for any number of classes, the same as VOC's and MMSegmentation's
    drawing colours for the first 21."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def ignore_colour(ignore_index: int) -> tuple[int, int, int]:
    """The colour of ignored pixels in RGB masks and in the palette of written masks: the VOC
    colour map's at the ignore index ([224, 224, 192] for 255, VOC's object boundaries)."""
    return default_palette(ignore_index + 1)[ignore_index]


def png_header(path: Path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) of a PNG file as its header says (its first 26
    bytes: nothing decoded), None for a file that is no PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    png = len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return (*struct.unpack(">II", head[16:24]), head[24], head[25]) if png else None


def check_mask_file(path: Path) -> tuple[int, int, int, int] | None:
    """What every mask reader checks before it opens a mask to decode it: not a FIFO or a
    device (reading one can block forever), and not a PNG whose header claims more pixels
    than vislab decodes (images' limit, infer.meta.max_pixels); returns the PNG header."""
    from vislab.fileio import special_file
    from vislab.infer.meta import max_pixels

    special = special_file(path)
    if special:
        raise VislabError(f"{path} is {special}, not a mask: vislab reads regular files only")
    try:
        header = png_header(path)
    except OSError as e:
        raise VislabError(f"cannot read mask {path}: {e}") from None
    if header is not None and header[0] * header[1] > max_pixels():
        raise VislabError(
            f"{path}: its header claims {header[0]}x{header[1]} pixels, more than the "
            f"{max_pixels():,} vislab decodes in one image or mask (a decompression bomb?)"
        )
    return header


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) uint32 0xRRGGBB."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class DatasetSpec:
    """Classes, colours, ignore index and mask format of a segmentation data set (or the class
    names of a classification one: then only ``classes`` matters).

    Subclasses change how masks decode and how the mean IoU is taken (the course's land-cover
    code: ``vislab/course/landcover.py``)."""

    name: str | None = None  # a built-in spec's name; None for one a recipe declares
    output_format = "palette"  # what `vislab predict` writes by default
    nan_when_absent = False  # mIoU: nan when a scored class is 0/0 (else left out of the mean)

    def __init__(
        self,
        classes: Sequence[str],
        palette: Sequence[Sequence[int]] | None = None,
        ignore_index: int = 255,
        mask_format: str = "auto",
        where: str = "data",
    ):
        classes = [str(c) for c in classes]
        if not classes:
            raise VislabError(f"{where}.classes: a data set needs at least one class")
        if len(set(classes)) != len(classes):
            dup = next(c for c in classes if classes.count(c) > 1)
            raise VislabError(f"{where}.classes: {dup!r} is listed twice")
        if mask_format not in MASK_FORMATS:
            raise VislabError(
                f"{where}.mask_format: {mask_format!r} is not one of {', '.join(MASK_FORMATS)}"
            )
        if not isinstance(ignore_index, int) or not 0 <= ignore_index <= 255:
            raise VislabError(f"{where}.ignore_index: {ignore_index!r} must be 0..255")
        if ignore_index < len(classes):
            raise VislabError(
                f"{where}.ignore_index: {ignore_index} is class {classes[ignore_index]!r}; the "
                f"ignore index must be none of the {len(classes)} classes (e.g. 255)"
            )
        if palette is None:
            palette = default_palette(len(classes))
        palette = [tuple(int(v) for v in c) for c in palette]
        if len(palette) != len(classes):
            raise VislabError(
                f"{where}.palette: {len(palette)} colours for {len(classes)} classes; give one "
                "[R, G, B] per class"
            )
        for c in palette:
            if len(c) != 3 or not all(0 <= v <= 255 for v in c):
                raise VislabError(f"{where}.palette: {list(c)} is not an [R, G, B] of 0..255")
        if len(set(palette)) != len(palette):
            dup = next(c for c in palette if palette.count(c) > 1)
            raise VislabError(f"{where}.palette: {list(dup)} is the colour of two classes")
        if ignore_colour(ignore_index) in palette:
            raise VislabError(
                f"{where}.palette: {list(ignore_colour(ignore_index))} marks the ignored pixels "
                f"(index {ignore_index}) in RGB masks; give the class another colour"
            )
        self.classes: list[str] = classes
        self.palette: list[tuple[int, int, int]] = palette
        self.ignore_index = ignore_index
        self.mask_format = mask_format

    # -- what the classes are ------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def scored(self) -> list[int]:
        """The class indices the mean IoU averages (every class, unless a subclass says)."""
        return list(range(self.num_classes))

    @property
    def colors(self) -> np.ndarray:
        """(num_classes, 3) uint8, the drawing colour of each class."""
        return np.asarray(self.palette, dtype=np.uint8)

    def _lut(self) -> np.ndarray:
        """(256, 3) uint8: each index's colour, the ignore colour at the ignore index."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = self.colors
        lut[self.ignore_index] = ignore_colour(self.ignore_index)
        return lut

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    # -- stored form ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.yaml, checkpoint metadata and exports."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
            "ignore_index": self.ignore_index,
            "mask_format": self.mask_format,
        }

    @staticmethod
    def from_dict(data: Any, where: str = "dataset") -> DatasetSpec:
        """The spec of a stored record (a built-in one by its name)."""
        if not isinstance(data, dict):
            raise VislabError(f"{where}: the data set spec is not a mapping")
        if data.get("name"):
            return builtin_spec(data["name"], where)
        try:
            return DatasetSpec(
                data["classes"],
                data.get("palette"),
                data.get("ignore_index", 255),
                data.get("mask_format", "auto"),
                where=where,
            )
        except KeyError:
            raise VislabError(f"{where}: the data set spec lacks its classes") from None

    # -- masks ---------------------------------------------------------------------------
    def decode_rgb(self, rgb: np.ndarray, where: Any) -> tuple[np.ndarray, int]:
        """(H, W, 3) uint8 RGB mask -> ((H, W) uint8 class indices, the ignore index where
        the ignore colour is; pixels read by a rule that a subclass warns about, 0 here). A
        colour of no class is an error naming it."""
        packed = _pack(rgb)
        colours = np.concatenate([self.colors, [ignore_colour(self.ignore_index)]])
        values = np.array([*range(self.num_classes), self.ignore_index], dtype=np.uint8)
        codes = _pack(colours.astype(np.uint8))
        order = np.argsort(codes)
        pos = np.searchsorted(codes[order], packed).clip(0, len(codes) - 1)
        found = codes[order][pos] == packed
        if not found.all():
            y, x = (int(v[0]) for v in np.nonzero(~found))
            colour = [int(v) for v in rgb[y, x]]
            raise VislabError(
                f"{where}: colour {colour} at (x={x}, y={y}) is no class of the palette "
                f"({int((~found).sum())} such pixel(s)); give each class's colour in "
                f"data.palette (ignored pixels: {list(ignore_colour(self.ignore_index))}), or "
                "use single-channel index masks"
            )
        return values[order[pos]], 0

    def check_index(self, index: np.ndarray, where: Any) -> np.ndarray:
        """Index mask values must be classes or the ignore index."""
        bad = (index >= self.num_classes) & (index != self.ignore_index)
        if bad.any():
            y, x = (int(v[0]) for v in np.nonzero(bad))
            raise VislabError(
                f"{where}: value {int(index[y, x])} at (x={x}, y={y}) is neither a class "
                f"(0..{self.num_classes - 1}) nor the ignore index {self.ignore_index}"
            )
        return index

    def read_mask(self, path: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, int]:
        """((H, W) uint8 class indices, ignore index where ignored; pixels a subclass's rule
        read, 0 here) of a mask file. size (H, W), when given, is the size it must have."""
        from PIL import Image

        from vislab.data.images import PILLOW_ERRORS, depth_words, mode_words

        path = Path(path)
        header = check_mask_file(path)
        try:
            with Image.open(path) as im:
                mode = im.mode
                # 16-bit RGB(A) PNGs come as their high bytes: c * 257 reads back as c
                deep = depth_words(path, mode)
                if deep and (mode not in ("RGB", "RGBA") or (header and header[3] == 4)):
                    raise VislabError(
                        f"{path}: a mask is an 8-bit index (L or P) or an RGB(A) of 8 or 16 "
                        f"bits per channel; this is {deep}"
                    )
                as_index = mode in ("L", "P") and self.mask_format != "rgb"
                if self.mask_format == "index" and mode not in ("L", "P"):
                    raise VislabError(
                        f"{path}: {deep or f'a {mode_words(mode)} mask'}, but "
                        "data.mask_format is index (single-channel L or palette-mode P files)"
                    )
                if as_index:
                    arr = np.asarray(im)
                elif mode in ("RGB", "RGBA", "P"):
                    arr = np.asarray(im.convert("RGB") if mode == "P" else im)[..., :3]
                else:
                    raise VislabError(
                        f"{path}: mask mode {mode_words(mode)} is neither an 8-bit index "
                        "(L, P) nor RGB"
                    )
        except PILLOW_ERRORS as e:
            raise VislabError(f"cannot read mask {path}: {e}") from None
        if size is not None and arr.shape[:2] != tuple(size):
            raise VislabError(
                f"{path} is {arr.shape[1]}x{arr.shape[0]} but its image is {size[1]}x{size[0]}"
            )
        if as_index:
            return self.check_index(np.ascontiguousarray(arr), path), 0
        return self.decode_rgb(arr, path)

    def warn_rule(self, counts: dict[str, int]) -> None:
        """One warning per command for the pixels read by a subclass's rule (none here)."""

    def to_rgb(self, index: np.ndarray) -> np.ndarray:
        """(H, W) class indices -> (H, W, 3) uint8 in the spec's colours (ignored pixels in
        the ignore colour)."""
        return self._lut()[index]

    def write_mask(self, index: np.ndarray, path: Any, fmt: str | None = None) -> None:
        """Write (H, W) class indices as a PNG (path or file): ``palette`` (palette-mode, the
        spec's colours, reads back as indices), ``rgb`` or ``index`` (grey levels = indices);
        default the spec's output_format."""
        from PIL import Image

        fmt = fmt or self.output_format
        index = np.ascontiguousarray(index, dtype=np.uint8)
        if fmt == "rgb":
            im = Image.fromarray(self.to_rgb(index))
        elif fmt == "index":
            im = Image.fromarray(index)  # 2-D uint8: mode L
        elif fmt == "palette":
            im = Image.fromarray(index)
            im.putpalette(self._lut().reshape(-1).tolist())  # L + a palette: mode P
        else:
            raise VislabError(f"mask format {fmt!r} is not one of palette, rgb, index")
        im.save(path, format="PNG")


def builtin_spec(name: str, where: str = "data.spec") -> DatasetSpec:
    """A built-in spec by name (``landcover``: the course's)."""
    if name not in BUILTIN:
        raise VislabError(f"{where}: unknown data set spec {name!r} (known: {', '.join(BUILTIN)})")
    module, attr = BUILTIN[name].split(":")
    return getattr(importlib.import_module(module), attr)
