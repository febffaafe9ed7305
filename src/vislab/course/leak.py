"""A leak users must be told about: the course's Problem 1 images are very likely 50 classes
of CIFAR-100's training split (32x32, 500 per class as files ``{class}_{0..499}``, val_50 the
ids 450-499, CIFAR-100's channel means). Weights pretrained on CIFAR-100 have seen val_50, so
a validation score of a model that started from them measures nothing."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

from vislab.errors import VislabWarning

CIFAR100 = re.compile(r"cifar[-_ ]?100", re.IGNORECASE)
COURSE_FOLDERS = ("train_50", "val_50")


def warn_cifar100(names: Iterable[object], folders: Iterable[object]) -> bool:
    """Warns (and returns True) when one of names (a weights tag or path, a checkpoint, a
    model name) says CIFAR-100 and one of folders is the course's train_50/ or val_50/."""
    said = [str(n) for n in names if n and CIFAR100.search(str(n))]
    course = any(f and Path(str(f)).name in COURSE_FOLDERS for f in folders)
    if not (said and course):
        return False
    warnings.warn(
        f"{said[0]} says CIFAR-100: the course's Problem 1 images are very likely CIFAR-100's "
        "training images (val_50 among them), which such weights were trained on; a "
        "validation score of this model is not a measurement",
        VislabWarning,
        stacklevel=2,
    )
    return True
