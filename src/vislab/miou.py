"""The course's mIoU, from one confusion matrix pooled over all pixels of all masks.

For each class i in 0..5: IoU_i = TP / (TP + FP + FN), where a pixel whose truth is unknown
(6) but whose prediction is i counts as a false positive of i, and a pixel of truth i predicted
as unknown as a false negative. mIoU is the mean of the six. A class absent from both truth and
prediction gives 0/0: the course's script then prints nan for the mean; we report the mean over
the classes that are present and name the absent ones. No torch here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vislab.data.landcover import CLASSES, NUM_SCORED

K = len(CLASSES)  # 7: six scored classes and unknown


def confusion(truth: np.ndarray, pred: np.ndarray, k: int = K) -> np.ndarray:
    """(k, k) int64 counts, row = truth, column = prediction, from class-index arrays."""
    t = truth.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def scores(cm: np.ndarray) -> dict[str, Any]:
    """Course mIoU, per-class IoU (None where 0/0), pixel accuracy, from a 7x7 confusion."""
    cm = np.asarray(cm, dtype=np.int64)
    iou: dict[str, float | None] = {}
    for i in range(NUM_SCORED):
        tp = cm[i, i]
        denom = cm[:, i].sum() + cm[i, :].sum() - tp  # (TP + FP) + (TP + FN) - TP
        iou[CLASSES[i]] = float(tp / denom) if denom else None
    present = [v for v in iou.values() if v is not None]
    absent = [name for name, v in iou.items() if v is None]
    total = cm.sum()
    return {
        "miou": float(np.mean(present)) if present else float("nan"),
        "iou": iou,
        "absent_classes": absent,
        "mean_over": f"{len(present)} of {NUM_SCORED} classes" if absent else "all 6 classes",
        "pixel_acc": float(np.trace(cm) / total) if total else float("nan"),
        "confusion": cm.tolist(),
    }


def format_scores(s: dict[str, Any]) -> str:
    """Per-class IoU and the mIoU, printed like the course's evaluator."""
    lines = []
    for name, v in s["iou"].items():
        lines.append(
            f"class #{CLASSES.index(name)} ({name}) : "
            + (f"{v:.5f}" if v is not None else "absent from truth and prediction (0/0)")
        )
    note = f" (mean over {s['mean_over']})" if s["absent_classes"] else ""
    lines.append(f"mean_iou: {s['miou']:.6f}{note}")
    lines.append(f"pixel accuracy: {s['pixel_acc']:.4f}")
    return "\n".join(lines)
