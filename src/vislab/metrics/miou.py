"""Mean IoU over a data set spec's classes, from one confusion matrix pooled over all pixels of
all masks.

For each scored class i: IoU_i = TP / (TP + FP + FN). Pixels whose truth is the spec's ignore
index are left out of the confusion (``confusion(..., ignore_index=)``). A class absent from
both truth and prediction gives 0/0: it is left out of the mean (``miou``), except for specs
that say ``nan_when_absent``. The course's land-cover spec scores classes 0..5 and keeps its
unknown class (6) in the matrix, so a pixel whose truth is unknown but whose prediction is i
counts as a false positive of i; its mean is summed in the course's order (``mean_iou += iou /
6``), so that it equals mean_iou_evaluate.py's to the last bit, and is nan when a class is 0/0,
as the course prints it. ``miou_present`` is always the mean over the classes that are there
(what training monitors). No torch here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vislab.data.spec import DatasetSpec, builtin_spec


def confusion(
    truth: np.ndarray, pred: np.ndarray, k: int, ignore_index: int | None = None
) -> np.ndarray:
    """(k, k) int64 counts, row = truth, column = prediction, from class-index arrays; truth
    pixels equal to ignore_index are not counted."""
    t = truth.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _course_mean(ious: list[float]) -> float:
    total = 0.0
    for v in ious:
        total += v / len(ious)
    return total


def scores(cm: np.ndarray, spec: DatasetSpec | None = None) -> dict[str, Any]:
    """mIoU, per-class IoU by class name (None where 0/0), the mean over the present classes,
    pixel accuracy, from a (K, K) confusion over the spec's classes (default: the course's
    land-cover set)."""
    spec = spec or builtin_spec("landcover")
    cm = np.asarray(cm, dtype=np.int64)
    iou: dict[str, float | None] = {}
    for i in spec.scored:
        tp = int(cm[i, i])
        denom = int(cm[:, i].sum() + cm[i, :].sum()) - tp  # (TP + FP) + (TP + FN) - TP
        iou[spec.classes[i]] = tp / denom if denom else None
    present = [v for v in iou.values() if v is not None]
    absent = [name for name, v in iou.items() if v is None]
    total = cm.sum()
    mean_present = _course_mean(present) if present else math.nan
    return {
        "miou": math.nan if absent and spec.nan_when_absent else mean_present,
        "miou_present": mean_present,
        "iou": iou,
        "absent_classes": absent,
        "pixel_acc": float(np.trace(cm) / total) if total else math.nan,
        "confusion": cm.tolist(),
    }


def format_scores(s: dict[str, Any]) -> str:
    """The lines mean_iou_evaluate.py prints, character for character (print adds a newline
    after the last, blank, one)."""
    lines = [
        f"class #{i} : " + ("nan" if v is None else f"{v:1.5f}")  # the course's '%1.5f'
        for i, v in enumerate(s["iou"].values())
    ]
    return "\n".join([*lines, "", f"mean_iou: {s['miou']:f}", ""])


def format_details(s: dict[str, Any]) -> str:
    """What vislab adds (evaluate --verbose): class names, the mean over the present classes
    when one is absent, pixel accuracy."""
    lines = [
        f"{name}: " + ("absent from truth and prediction (0/0)" if v is None else f"{v:.5f}")
        for name, v in s["iou"].items()
    ]
    if s["absent_classes"]:
        n = len(s["iou"]) - len(s["absent_classes"])
        lines.append(f"mean over the {n} present classes: {s['miou_present']:.6f}")
    lines.append(f"pixel accuracy: {s['pixel_acc']:.4f}")
    return "\n".join(lines)


def format_named(s: dict[str, Any], verbose: bool = False) -> str:
    """What `vislab evaluate` prints for a data set's own spec: one line per scored class with
    its name and IoU, the mIoU (over the classes present), and with verbose pixel accuracy."""
    width = max(len(name) for name in s["iou"])
    lines = [
        f"{name:<{width}}  " + ("absent (0/0, left out of the mean)" if v is None else f"{v:.5f}")
        for name, v in s["iou"].items()
    ]
    n = len(s["iou"]) - len(s["absent_classes"])
    lines.append(f"mIoU: {s['miou']:.5f} (mean over {n} of {len(s['iou'])} classes)")
    if verbose:
        lines.append(f"pixel accuracy: {s['pixel_acc']:.4f}")
    return "\n".join(lines)
