"""Image folders for classification, decoded once into one uint8 array.

Three layouts are understood:

- flat labeled folders, files named ``{label}_{id}.png`` (the course's ``train_50``), with the
  labels taken from the names or from a ``filename,label`` CSV such as ``val_gt.csv``; their
  classes are "0".."K-1", K the largest label + 1, unless the recipe names them;
- ImageFolder trees, one sub-folder per class (classes are the sorted folder names);
- unlabeled folders, for prediction.

Every image is decoded once with Pillow into an ``(N, H, W, 3)`` uint8 array; training then
augments whole batches as tensors. Images must all have one size unless ``image_size`` is
given, in which case each is resized (bilinear) to ``image_size x image_size``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vislab.errors import VislabError
from vislab.fileio import require_file, special_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_LABELED_NAME = re.compile(r"^(\d+)_.+$")
CHUNK_BYTES = 16 << 20  # uint8 values per chunk where a whole decoded set is summed


@dataclass
class ImageSet:
    """Decoded images with their file names, and labels when known."""

    images: np.ndarray  # (N, H, W, 3) uint8
    names: list[str]  # base names, sorted
    labels: np.ndarray | None  # (N,) int64, or None for unlabeled sets
    classes: list[str]  # class names, index = label


def visible(folder: Path) -> list[Path]:
    """The entries of folder, sorted, without hidden ones (.ipynb_checkpoints/, macOS's ._
    files, .DS_Store): tools leave them, and they are no one's images or classes."""
    entries = sorted(p for p in Path(folder).iterdir() if not p.name.startswith("."))
    for p in entries:
        special = special_file(p)
        if special:
            raise VislabError(
                f"{p} is {special}, not an image or a folder: vislab reads regular files only "
                "(move it out of the folder)"
            )
        try:
            p.name.encode()
        except UnicodeEncodeError:  # the bytes of the name are not UTF-8
            raise VislabError(
                f"{folder}: the name {os.fsencode(p.name)!r} is not valid UTF-8 (a CSV or a "
                "mask named after it could not say which file it was): rename it"
            ) from None
    return entries


def list_images(folder: Path) -> list[Path]:
    """The image files directly in folder, sorted by name; errors if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VislabError(f"not a folder: {folder}")
    entries = visible(folder)
    files = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    classes = [p.name for p in entries if p.is_dir()]
    if not files and classes:
        raise VislabError(
            f"{folder} holds class folders ({', '.join(classes[:3])}), not images: this reads "
            f"a flat folder of images; give it one class folder ({folder / classes[0]}) at a time"
        )
    if not files:
        raise VislabError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


# modes read as RGB faithfully, as torchvision's loader does (grey replicated, alpha dropped,
# palette looked up; Pillow gives 16-bit RGB, RGBA and grey-with-alpha PNGs their high bytes)
_CONVERTIBLE = {"RGB", "L", "LA", "P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr", "1"}
# Pillow's image modes, in words, for messages
_MODE_WORDS = {
    "1": "1-bit black and white",
    "L": "8-bit grey",
    "LA": "8-bit grey with alpha",
    "P": "8-bit palette",
    "PA": "8-bit palette with alpha",
    "RGB": "8-bit RGB",
    "RGBA": "8-bit RGBA",
    "CMYK": "8-bit CMYK",
    "I;16": "16-bit grey",
    "I;16B": "16-bit grey",
    "I;16L": "16-bit grey",
    "I": "32-bit integer grey",
    "F": "32-bit float grey",
}


def mode_words(mode: str) -> str:
    """Pillow's mode name with what it holds, e.g. "I;16 (16-bit grey)"."""
    return f"{mode} ({_MODE_WORDS[mode]})" if mode in _MODE_WORDS else mode


# what Pillow raises on a file it cannot decode (UnidentifiedImageError is an OSError;
# DecompressionBombError: a header that claims more pixels than Pillow will decode)
PILLOW_ERRORS = (OSError, Image.DecompressionBombError, SyntaxError, ValueError)


def depth_words(path: Path, mode: str) -> str | None:
    """What an image of more than 8 bits per channel is, in words, else None: its Pillow mode
    (I;16, I, F), or its PNG header's bit depth where Pillow names an 8-bit mode (16-bit RGB,
    grey with alpha and RGBA PNGs, which it reads by their high bytes)."""
    from vislab.data.spec import png_header

    if mode not in _CONVERTIBLE:
        return f"a {mode_words(mode)} image"
    head = png_header(path)
    if head is None or head[2] <= 8:
        return None
    colour = {2: "RGB", 4: "grey with alpha", 6: "RGBA"}.get(head[3], f"colour type {head[3]}")
    return f"a {head[2]}-bit {colour} PNG (bit depth {head[2]} in its header)"


def read_rgb(path: Path, size: int | None = None) -> np.ndarray:
    """Decode one image to (H, W, 3) uint8, naming the file if it cannot be read."""
    special = special_file(path)
    if special:
        raise VislabError(f"{path} is {special}, not an image: vislab reads regular files only")
    try:
        with Image.open(path) as im:
            if im.mode not in _CONVERTIBLE:
                raise VislabError(
                    f"{path} is a {mode_words(im.mode)} image, more than 8 bits per channel, "
                    "which Pillow would clip: convert it to 8-bit RGB first"
                )
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except PILLOW_ERRORS as e:
        raise VislabError(f"cannot read image {path}: {e}") from None


def decode_all(
    files: list[Path], size: int | None = None, store: str = "memory", processes: int = 1
) -> np.ndarray:
    """Decode files into one (N, H, W, 3) array, held as store says (data/store.py: memory,
    disk or auto; processes: how many would each hold it); mixed sizes are refused unless
    size is set."""
    from vislab.data.store import decoded_arrays, set_key

    def mismatch(i: int, shape: tuple, first: tuple) -> str:
        (h, w, _), (h0, w0, _) = shape[0], first[0]
        return (
            f"{files[i]} is {w}x{h} but {files[0].name} is {w0}x{h0}: images must share one "
            "size (set data.image_size to resize them all)"
        )

    (images,) = decoded_arrays(
        len(files),
        lambda i: (read_rgb(files[i], size),),
        ("images",),
        store=store,
        key=lambda: set_key(files, {"kind": "images", "size": size}),
        processes=processes,
        mismatch=mismatch,
    )
    return images


def label_from_name(path: Path) -> int:
    m = _LABELED_NAME.match(path.stem)
    if not m:
        raise VislabError(f"{path}: file name does not start with a label ({{label}}_{{id}}.png)")
    return int(m.group(1))


def read_name_csv(path: Path) -> dict[str, str]:
    """A filename,label CSV as {base name: label text} (class names, or integers as text)."""
    path = Path(path)
    require_file(path, "label file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # -sig: Excel's "CSV UTF-8" too
    except UnicodeDecodeError as e:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        what = 'UTF-16 text (Excel\'s "Unicode Text")' if utf16 else "not UTF-8 text"
        raise VislabError(
            f"{path} is {what}: byte {raw[e.start]:#04x} at offset {e.start} is no UTF-8; save it "
            'as "CSV UTF-8" (or convert it: iconv -t UTF-8)'
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as e:  # a field past the csv module's limit of 131,072 characters
        raise VislabError(
            f"{path} line {reader.line_num}: {e} (a row holds a file name and its label)"
        ) from None
    if not rows or [c.strip() for c in rows[0]] != ["filename", "label"]:
        raise VislabError(f"{path}: the first row must be 'filename,label'")
    labels: dict[str, str] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise VislabError(f"{path} line {n}: expected 2 columns, got {len(row)}")
        name, label = row[0].strip(), row[1].strip()
        if not name or not label:
            what = "file name" if not name else f"label of {name}"
            raise VislabError(
                f"{path} line {n}: an empty {what} (every row names a file and its class)"
            )
        if name in labels:
            raise VislabError(f"{path} line {n}: {name} is listed twice")
        labels[name] = label
    return labels


def read_label_csv(path: Path) -> dict[str, int]:
    """Read a filename,label CSV of integer labels into {base name: label}."""
    labels: dict[str, int] = {}
    for name, label in read_name_csv(path).items():
        try:
            labels[name] = int(label)
        except ValueError:
            raise VislabError(f"{path}: {name}'s label {label!r} is not an integer") from None
    return labels


def is_image_folder_tree(root: Path) -> bool:
    """True when root holds class sub-folders and no images of its own."""
    entries = visible(root)
    has_dirs = any(p.is_dir() for p in entries)
    has_images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries)
    return has_dirs and not has_images


def _check_range(labels: np.ndarray, files: list[Path], num_classes: int) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise VislabError(
            f"{files[i]}: label {int(labels[i])} is outside 0..{num_classes - 1}, the "
            f"{num_classes} classes ({bad.size} file(s) out of range)"
        )


def load_labeled(
    folder: Path,
    labels_csv: Path | None = None,
    image_size: int | None = None,
    max_per_class: int | None = None,
    classes: list[str] | None = None,
    complete: bool = False,
    store: str = "memory",
    processes: int = 1,
) -> ImageSet:
    """Load a flat labeled folder or an ImageFolder tree with its classes, the images held as
    store says (decode_all).

    classes: the names in index order when they are known (data.classes, or the training
    set's for a validation set); a flat folder's labels must then be below len(classes), and
    a tree's class folders among them (all of them, in this order, when complete). None: a
    flat folder's classes are "0".."K-1" with K its largest label + 1, a tree's its sorted
    class folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VislabError(f"not a folder: {folder}")
    if is_image_folder_tree(folder):
        if labels_csv is not None:
            raise VislabError(
                f"{folder} is a class-folder tree, whose folders name the labels; the labels "
                f"CSV {labels_csv} (data.val_labels) would go unread: leave it out"
            )
        files, label_arr, names, classes = _class_tree(folder, classes, complete)
    else:
        files, label_arr = _flat(folder, labels_csv)
        names = [p.name for p in files]
        if classes is None:  # a flat folder's labels are numbers
            classes = [str(i) for i in range(int(label_arr.max()) + 1)]
        _check_range(label_arr, files, len(classes))
    if max_per_class is not None:
        keep = np.concatenate(
            [np.flatnonzero(label_arr == c)[:max_per_class] for c in np.unique(label_arr)]
        )
        keep.sort()
        files = [files[i] for i in keep]
        names = [names[i] for i in keep]
        label_arr = label_arr[keep]
    return ImageSet(decode_all(files, image_size, store, processes), names, label_arr, classes)


def _flat(folder: Path, labels_csv: Path | None) -> tuple[list[Path], np.ndarray]:
    """(files, labels) of a flat folder: labels from the CSV, else from the file names."""
    files = list_images(folder)
    if labels_csv is None:
        return files, np.asarray([label_from_name(p) for p in files], dtype=np.int64)
    table = read_label_csv(labels_csv)
    missing = [p.name for p in files if p.name not in table]
    if missing:
        raise VislabError(
            f"{labels_csv} has no label for {len(missing)} file(s) of {folder}, "
            f"e.g. {', '.join(missing[:3])}"
        )
    return files, np.asarray([table[p.name] for p in files], dtype=np.int64)


def load_unlabeled(folder: Path, image_size: int | None = None) -> ImageSet:
    """Load every image of a folder, for prediction."""
    files = list_images(folder)
    return ImageSet(decode_all(files, image_size), [p.name for p in files], None, [])


def _class_tree(
    folder: Path, classes: list[str] | None, complete: bool
) -> tuple[list[Path], np.ndarray, list[str], list[str]]:
    """(files, labels, names "class/file", classes) of an ImageFolder tree."""
    found = [p.name for p in visible(folder) if p.is_dir()]
    if classes is None:
        classes = found
    if complete and list(classes) != found:
        raise VislabError(
            f"{folder}: data.classes {list(classes)} are not its class folders {found} "
            "(sorted by name): name them so, or leave data.classes out"
        )
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise VislabError(
            f"{folder} has class folder(s) the training set has not: {', '.join(unknown[:5])}"
        )
    files, labels = [], []
    for cls in found:
        images = [p for p in visible(folder / cls) if p.suffix.lower() in IMAGE_SUFFIXES]
        files += images
        labels += [classes.index(cls)] * len(images)
    if not files:
        raise VislabError(f"no images in the class folders of {folder}")
    names = [f"{p.parent.name}/{p.name}" for p in files]
    return files, np.asarray(labels, dtype=np.int64), names, list(classes)
