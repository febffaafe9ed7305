"""`vislab evaluate`: a prediction CSV against class labels, or a folder of predicted masks
against the ground-truth masks (the course's mIoU).

No torch here: scoring a CSV should start in well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vislab.errors import VislabError
from vislab.fileio import atomic_savefig, atomic_write_bytes, atomic_write_csv


def read_truth(gt: Path) -> dict[str, int]:
    """Ground truth from a filename,label CSV or a flat folder of {label}_{id} images."""
    from vislab.data.images import label_from_name, list_images, read_label_csv

    gt = Path(gt)
    if gt.is_dir():
        return {p.name: label_from_name(p) for p in list_images(gt)}
    return read_label_csv(gt)


def _names(items: list[str], n: int = 5) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def check_pairing(pred: dict[str, int], truth: dict[str, int], pred_path: Path) -> None:
    missing = sorted(set(truth) - set(pred))
    extra = sorted(set(pred) - set(truth))
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} file(s) of the ground truth are missing: {_names(missing)}"
        )
    if extra:
        problems.append(f"{len(extra)} file(s) are not in the ground truth: {_names(extra)}")
    if problems:
        raise VislabError(f"{pred_path}: " + "; ".join(problems))


def score(pred: dict[str, int], truth: dict[str, int], pred_path: Path) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion over the classes 0..K-1 of the truth; a
    predicted label outside them is an error naming its file (not a K-times-larger matrix)."""
    names = sorted(truth)
    t = np.asarray([truth[n] for n in names], dtype=np.int64)
    p = np.asarray([pred[n] for n in names], dtype=np.int64)
    if (t < 0).any():
        raise VislabError("ground-truth labels must be non-negative integers")
    k = int(t.max()) + 1
    bad = np.flatnonzero((p < 0) | (p >= k))
    if bad.size:
        i = int(bad[0])
        raise VislabError(
            f"{pred_path}: {names[i]} is predicted as {int(p[i])}, not a class of the ground "
            f"truth (0..{k - 1}); {bad.size} prediction(s) out of range"
        )
    from vislab.metrics.miou import confusion

    cm = confusion(t, p, k)
    support = cm.sum(1)
    per_class = {str(c): (float(cm[c, c] / support[c]) if support[c] else None) for c in range(k)}
    return {
        "accuracy": float(np.trace(cm) / cm.sum()),
        "n": int(cm.sum()),
        "per_class_accuracy": per_class,
        "confusion": cm.tolist(),
    }


def plot_confusion(cm: np.ndarray, path: Path, title: str, names: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(cm)
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = min(14, 4 + k * 0.18)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    step = 1 if k <= 20 else 5
    ticks = list(range(0, k, step))
    ax.set_xticks(ticks, [names[t] for t in ticks] if names else ticks, rotation=45 if names else 0)
    ax.set_yticks(ticks, [names[t] for t in ticks] if names else ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def evaluate_classification(
    pred_csv: Path, gt: Path, out_dir: Path | None, json_path: Path | None = None
) -> dict[str, Any]:
    """Score pred_csv against gt; write metrics.json, confusion.csv and confusion.png to out_dir
    (default <pred>_eval), and the metrics to json_path when given."""
    from vislab.data.images import read_label_csv

    pred_csv = Path(pred_csv)
    pred = read_label_csv(pred_csv)
    truth = read_truth(gt)
    check_pairing(pred, truth, pred_csv)
    result = score(pred, truth, pred_csv)
    result["prediction"], result["ground_truth"] = str(pred_csv), str(gt)
    if out_dir is None:
        out_dir = pred_csv.with_name(pred_csv.stem + "_eval")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cm = np.asarray(result["confusion"])
    text = json.dumps(result, indent=1).encode()
    atomic_write_bytes(out_dir / "metrics.json", text)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(json_path), text)
    rows = [["true\\pred", *range(len(cm))], *([c, *row] for c, row in enumerate(cm))]
    atomic_write_csv(out_dir / "confusion.csv", rows, newline="\r\n")
    plot_confusion(cm, out_dir / "confusion.png", f"{pred_csv.name}: acc {result['accuracy']:.4f}")
    result["out_dir"] = str(out_dir)
    return result


def format_report(result: dict[str, Any]) -> str:
    lines = [f"accuracy: {result['accuracy']:.4f} ({result['n']} images)"]
    per = [(c, a) for c, a in result["per_class_accuracy"].items() if a is not None]
    lines.append("per-class accuracy:")
    for i in range(0, len(per), 10):
        lines.append("  " + "  ".join(f"{c:>3}:{a:.2f}" for c, a in per[i : i + 10]))
    return "\n".join(lines)


def _mask_id(name: str) -> str:
    stem = name[: -len(".png")]
    return stem[: -len("_mask")] if stem.endswith("_mask") else stem


def pair_masks(gt_dir: Path, pred_dir: Path) -> list[tuple[Path, Path]]:
    """Pair the sorted *.png of both folders, as the course does; refuse what cannot pair."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    if not gt_dir.is_dir():
        raise VislabError(
            f"--pred {pred_dir} is a folder of masks, so --gt must be the folder of "
            f"ground-truth masks; {gt_dir} is not a folder"
        )
    gts, preds = sorted(gt_dir.glob("*.png")), sorted(pred_dir.glob("*.png"))
    if not gts:
        raise VislabError(f"no .png masks in {gt_dir}")
    if len(gts) != len(preds):
        gt_ids = {_mask_id(p.name) for p in gts}
        pred_ids = {_mask_id(p.name) for p in preds}
        missing, extra = sorted(gt_ids - pred_ids), sorted(pred_ids - gt_ids)
        detail = []
        if missing:
            detail.append(f"no prediction for {_names(missing)}")
        if extra:
            detail.append(f"no ground truth for {_names(extra)}")
        raise VislabError(
            f"{pred_dir} has {len(preds)} masks but {gt_dir} has {len(gts)}: " + "; ".join(detail)
        )
    for g, p in zip(gts, preds, strict=True):
        if _mask_id(g.name) != _mask_id(p.name):
            raise VislabError(f"sorted file lists do not line up: {g.name} pairs with {p.name}")
    return list(zip(gts, preds, strict=True))


def _pair_codes(pair: tuple[Path, Path]) -> np.ndarray:
    """(8, 8) counts of (truth code, predicted code) for one pair of mask files."""
    from vislab.course.landcover import read_mask_rgb, rgb_to_code

    gt, pred = pair
    truth = rgb_to_code(read_mask_rgb(gt))
    guess = rgb_to_code(read_mask_rgb(pred, size=truth.shape))
    # codes are 0..7, so truth * 8 + guess fits a byte: one bincount, no per-pixel lookup
    return np.bincount((truth * np.uint8(8) + guess).ravel(), minlength=64).reshape(8, 8)


def _codes_of(pairs: list[tuple[Path, Path]]) -> list[np.ndarray]:
    return [_pair_codes(pair) for pair in pairs]


def _all_pair_codes(pairs: list[tuple[Path, Path]]) -> list[np.ndarray]:
    """_pair_codes of every pair, split over the free cores: this process and forked children
    (the PNG decoder holds the GIL, so threads would take turns); one process for a few masks."""
    import os

    from vislab.runtime import forked_map

    workers = min(len(os.sched_getaffinity(0)), len(pairs) // 32)
    if workers < 2:
        return _codes_of(pairs)
    parts = forked_map(_codes_of, [pairs[i::workers] for i in range(workers)])
    out: list[np.ndarray] = [np.empty(0)] * len(pairs)
    for i, part in enumerate(parts):
        out[i::workers] = part
    return out


def _classes_of(codes: np.ndarray) -> np.ndarray:
    """(7, 7) class counts of (8, 8) code counts (red read as urban, as the course does)."""
    from vislab.course.landcover import CODE_TO_CLASS

    cm = np.zeros((len(CODE_TO_CLASS) - 1, len(CODE_TO_CLASS) - 1), dtype=np.int64)
    np.add.at(cm, (CODE_TO_CLASS[:, None], CODE_TO_CLASS[None, :]), codes)
    return cm


def mask_confusions(gt_dir: Path, pred_dir: Path) -> dict[str, np.ndarray]:
    """Each mask's own (7, 7) class confusion (row = truth), by tile id."""
    pairs = pair_masks(gt_dir, pred_dir)
    return {
        _mask_id(gt.name): _classes_of(codes)
        for (gt, _), codes in zip(pairs, _all_pair_codes(pairs), strict=True)
    }


def evaluate_masks(gt_dir: Path, pred_dir: Path) -> dict[str, Any]:
    """The course's mIoU over all pixels of all masks, per-class IoU, pixel accuracy."""
    from vislab.course.landcover import RED_CODE, warn_red
    from vislab.metrics.miou import scores

    pairs = pair_masks(gt_dir, pred_dir)
    codes = np.zeros((8, 8), dtype=np.int64)
    red = {}
    for (gt, pred), part in zip(pairs, _all_pair_codes(pairs), strict=True):
        codes += part
        red[f"{gt.parent.name}/{gt.name}"] = int(part[RED_CODE].sum())
        red[f"{pred.parent.name}/{pred.name}"] = int(part[:, RED_CODE].sum())
    warn_red(red)
    result = scores(_classes_of(codes))
    result["n_masks"] = len(pairs)
    return result


def write_mask_scores(result: dict[str, Any], json_path: Path | None, out_dir: Path | None):
    """--json FILE: the metrics (a nan mIoU as null); --out DIR: metrics.json, confusion.csv
    and confusion.png."""
    from vislab.course.landcover import CLASSES

    finite = {k: (None if isinstance(v, float) and v != v else v) for k, v in result.items()}
    text = json.dumps(finite, indent=1).encode()
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(json_path), text)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / "metrics.json", text)
        cm = np.asarray(result["confusion"])
        rows = [[name, *row] for name, row in zip(CLASSES, cm, strict=True)]
        atomic_write_csv(out_dir / "confusion.csv", [["true\\pred", *CLASSES], *rows], "\r\n")
        plot_confusion(cm, out_dir / "confusion.png", f"mIoU {result['miou']:.4f}", CLASSES)
