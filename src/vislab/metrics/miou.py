"""The course's mIoU, from one confusion matrix pooled over all pixels of all masks.

For each class i in 0..5: IoU_i = TP / (TP + FP + FN), where a pixel whose truth is unknown
(6) but whose prediction is i counts as a false positive of i, and a pixel of truth i predicted
as unknown as a false negative. mIoU is the mean of the six, summed in the course's order
(``mean_iou += iou / 6``), so that it equals mean_iou_evaluate.py's to the last bit. A class
absent from both truth and prediction gives 0/0, for which the course prints nan, and then nan
for the mean; ``miou_present`` is the mean over the classes that are there (what training
monitors). No torch here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vislab.course.landcover import CLASSES, NUM_SCORED

K = len(CLASSES)  # 7: six scored classes and unknown


def confusion(truth: np.ndarray, pred: np.ndarray, k: int = K) -> np.ndarray:
    """(k, k) int64 counts, row = truth, column = prediction, from class-index arrays."""
    t = truth.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _course_mean(ious: list[float]) -> float:
    total = 0.0
    for v in ious:
        total += v / len(ious)
    return total


def scores(cm: np.ndarray) -> dict[str, Any]:
    """Course mIoU (nan when a class is 0/0), per-class IoU (None where 0/0), the mean over
    the present classes, pixel accuracy, from a 7x7 confusion."""
    cm = np.asarray(cm, dtype=np.int64)
    iou: dict[str, float | None] = {}
    for i in range(NUM_SCORED):
        tp = int(cm[i, i])
        denom = int(cm[:, i].sum() + cm[i, :].sum()) - tp  # (TP + FP) + (TP + FN) - TP
        iou[CLASSES[i]] = tp / denom if denom else None
    present = [v for v in iou.values() if v is not None]
    absent = [name for name, v in iou.items() if v is None]
    total = cm.sum()
    return {
        "miou": _course_mean(present) if not absent else math.nan,
        "miou_present": _course_mean(present) if present else math.nan,
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
        n = NUM_SCORED - len(s["absent_classes"])
        lines.append(f"mean over the {n} present classes: {s['miou_present']:.6f}")
    lines.append(f"pixel accuracy: {s['pixel_acc']:.4f}")
    return "\n".join(lines)
