"""A real classification set that ships with scikit-learn, in the course's p1_data layout.

scikit-learn's handwritten digits (1,797 scans of 8x8 pixels, 10 classes, UCI) resized to
32x32 RGB: the demo's Problem 1 data, with no download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def digit_images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) uint8 images and (N,) labels, in scikit-learn's order."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.empty((len(digits.images), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(digits.images):  # values 0..16, ink is high
        gray = Image.fromarray((img * (255 / 16)).astype(np.uint8))
        images[i] = np.asarray(gray.resize((size, size), Image.BILINEAR).convert("RGB"))
    return images, digits.target.astype(np.int64)


def write_digits_layout(root: Path, val_fraction: float = 0.2) -> Path:
    """Write root/train_50/{label}_{id}.png, root/val_50/ and root/val_gt.csv.

    The last val_fraction of each class (in scikit-learn's order) is the validation set, so
    both sets hold every class in the same proportion; ids run from 0 within each class."""
    root = Path(root)
    images, labels = digit_images()
    rows = ["filename,label"]
    for split in ("train_50", "val_50"):
        (root / split).mkdir(parents=True, exist_ok=True)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_train = len(idx) - max(1, round(len(idx) * val_fraction))
        for k, i in enumerate(idx):
            name = f"{c}_{k}.png"
            split = "train_50" if k < n_train else "val_50"
            Image.fromarray(images[i]).save(root / split / name)
            if split == "val_50":
                rows.append(f"{name},{c}")
    (root / "val_gt.csv").write_text("\n".join(rows) + "\n")
    return root
