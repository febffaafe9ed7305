"""The course's land-cover data set: its spec (LANDCOVER) and colour code (no torch: evaluation
must start fast).

Each mask channel is thresholded at 128 and packed as code = 4R + 2G + B:

    code 3 cyan    -> 0 urban        code 1 blue  -> 4 water
    code 6 yellow  -> 1 agriculture  code 7 white -> 5 barren
    code 5 magenta -> 2 rangeland    code 0 black -> 6 unknown
    code 2 green   -> 3 forest       code 4 red   -> 0 urban (see below)

Red belongs to no class. The course's scripts never assign it, so a red pixel keeps the 0 that
their fresh arrays hold (``np.zeros`` in viz_mask.py; ``np.empty`` over hundreds of masks in
mean_iou_evaluate.py, which the system hands out zeroed) and counts as urban. vislab reads it
the same way everywhere (training, evaluation, overlay, progress) and warns once per command
with the count. RGBA and palette masks are read by their first three channels, as the
course's ``imageio.imread`` reads them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from vislab.data.spec import DatasetSpec, check_mask_file
from vislab.errors import VislabError, VislabWarning

CLASSES = ["urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown"]
NUM_SCORED = 6  # the course's mIoU averages classes 0..5
COLORS = np.array(
    [
        [0, 255, 255],  # urban: cyan
        [255, 255, 0],  # agriculture: yellow
        [255, 0, 255],  # rangeland: magenta
        [0, 255, 0],  # forest: green
        [0, 0, 255],  # water: blue
        [255, 255, 255],  # barren: white
        [0, 0, 0],  # unknown: black
    ],
    dtype=np.uint8,
)
RED_CODE = 4
# code (0..7) -> class index; red (4, no class) is read as urban (0), as the course reads it
CODE_TO_CLASS = np.array([6, 4, 3, 0, 0, 2, 1, 5], dtype=np.uint8)


class RedPixelsWarning(VislabWarning):
    """A mask holds pure red pixels (code 4), which belong to no class."""


def rgb_to_code(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 code 4R + 2G + B, each channel thresholded at 128."""
    c = rgb >> 7  # 1 where the channel is >= 128
    return c[..., 0] * np.uint8(4) + c[..., 1] * np.uint8(2) + c[..., 2]


def rgb_to_index(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 RGB mask -> ((H, W) uint8 class index, number of red pixels)."""
    code = rgb_to_code(rgb)
    return CODE_TO_CLASS[code], int(np.count_nonzero(code == RED_CODE))


def index_to_rgb(index: np.ndarray) -> np.ndarray:
    """(H, W) class index (0..6) -> (H, W, 3) uint8 RGB in the course's colours."""
    return COLORS[index]


def read_mask_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a mask file to (H, W, 3) uint8: RGB, or the first three channels of RGBA and
    palette images. libspng decodes PNG 2-3x faster than Pillow, which matters when scoring
    hundreds of masks; other formats (and PNGs libspng cannot take) go through Pillow.
    size (H, W), when given, is the size the mask must have (its image's). A FIFO or device,
    a header of more pixels than vislab decodes, or of more than 8 bits per channel, is
    refused before anything decodes the file."""
    path = Path(path)
    header = check_mask_file(path)
    if header is not None and header[2] > 8:
        raise VislabError(f"{path}: mask must be an 8-bit RGB (or RGBA) image, got {_kind(path)}")
    rgb = None
    if path.suffix.lower() == ".png":
        import pyspng  # here: a submission folder writes masks where it is not installed

        try:
            rgb = pyspng.load(path.read_bytes())  # palette images come out as RGB
        except RuntimeError:
            pass  # e.g. grey + alpha: Pillow names what it is below
        except OSError as e:
            raise VislabError(f"cannot read mask {path}: {e}") from None
    if rgb is None:
        from PIL import Image  # here: scoring PNGs needs no Pillow

        from vislab.data.images import PILLOW_ERRORS

        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB") if im.mode == "P" else im)
        except PILLOW_ERRORS as e:
            raise VislabError(f"cannot read mask {path}: {e}") from None
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise VislabError(
            f"{path}: mask must be an 8-bit RGB (or RGBA) image, got {_kind(path, rgb)}"
        )
    rgb = rgb[..., :3]
    if size is not None and rgb.shape[:2] != tuple(size):
        raise VislabError(
            f"{path} is {rgb.shape[1]}x{rgb.shape[0]} but its image is {size[1]}x{size[0]}"
        )
    return rgb


def _kind(path: Path, rgb: np.ndarray | None = None) -> str:
    """What a mask file holds, in words: Pillow's name of its mode (libspng decodes 16-bit
    grey as two channels), or a PNG header's bit depth where Pillow names an 8-bit mode for
    more (16-bit RGB), else the decoded array's channels and type."""
    from PIL import Image

    from vislab.data.images import PILLOW_ERRORS, depth_words, mode_words

    try:
        with Image.open(path) as im:
            return depth_words(path, im.mode) or f"a {mode_words(im.mode)} image"
    except PILLOW_ERRORS:
        if rgb is None:
            return "an image Pillow cannot read"
        return f"{rgb.shape[2] if rgb.ndim == 3 else 1} channel(s) of {rgb.dtype}"


def read_mask(path: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, int]:
    """Read a mask file as ((H, W) class indices, number of red pixels read as urban)."""
    return rgb_to_index(read_mask_rgb(path, size))


def warn_red(red: dict[str, int]) -> None:
    """One warning for all masks (truth and predictions alike) that held pure red pixels."""
    red = {k: v for k, v in red.items() if v}
    if red:
        files = ", ".join(f"{k} ({v})" for k, v in sorted(red.items())[:12])
        more = f" and {len(red) - 12} more" if len(red) > 12 else ""
        warnings.warn(
            f"{len(red)} mask(s) hold {sum(red.values())} pure red pixel(s), a colour of no "
            f"class, read as urban as the course's scripts read them: {files}{more}",
            RedPixelsWarning,
            stacklevel=2,
        )


def write_mask(index: np.ndarray, path) -> None:
    """Write (H, W) class indices as an RGB PNG in the course's colours (path or file)."""
    from PIL import Image

    Image.fromarray(index_to_rgb(index)).save(path, format="PNG")


class LandCoverSpec(DatasetSpec):
    """The course's land-cover set as a data set spec: RGB masks read through the 3-bit code
    (red as urban, with a warning), classes 0..5 scored and unknown counted as the course
    counts it (truth unknown predicted as i: a false positive of i), nan for the mean when a
    scored class is absent (0/0), masks written in RGB as hw1_2.sh must."""

    name = "landcover"
    output_format = "rgb"
    nan_when_absent = True

    @property
    def scored(self) -> list:
        return list(range(NUM_SCORED))

    def decode_rgb(self, rgb: np.ndarray, where) -> tuple:
        return rgb_to_index(rgb)

    def read_mask(self, path: Path, size: tuple | None = None) -> tuple:
        return read_mask(path, size)

    def warn_rule(self, counts: dict) -> None:
        warn_red(counts)

    def to_rgb(self, index: np.ndarray) -> np.ndarray:
        return index_to_rgb(index)


LANDCOVER = LandCoverSpec(CLASSES, COLORS.tolist(), mask_format="rgb", where="landcover")
