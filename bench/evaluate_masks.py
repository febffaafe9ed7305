"""Scoring the 257 validation masks: vislab against a course-style evaluator, side by side.

The course-style evaluator is written here from the course's description: read every mask
into a float array, threshold each channel, map the 7 codes one boolean pass at a time, then
count per class over the whole stack. vislab decodes through a lookup table and scores one
pooled bincount. Both score the same prediction folder (here: the ground truth against itself
rolled by one tile, so every class has errors). Reports medians of --repeats runs, in-process
(reader + scorer) and as whole commands (python start-up and imports included).

    python bench/evaluate_masks.py [--gt ../shared/data/dlcv-p2/validation] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def course_read_masks(folder: Path) -> np.ndarray:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".png")
    masks = np.empty((len(files), 512, 512))
    for i, f in enumerate(files):
        mask = np.asarray(Image.open(f)).astype(float)
        mask = (mask >= 128).astype(int)
        mask = 4 * mask[:, :, 0] + 2 * mask[:, :, 1] + mask[:, :, 2]
        # (4, 6): red read as unknown, as vislab does (the course leaves np.empty garbage there)
        for code, cls in ((3, 0), (6, 1), (5, 2), (2, 3), (1, 4), (7, 5), (0, 6), (4, 6)):
            masks[i, mask == code] = cls
    return masks


def course_miou(pred: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) * (labels == i))
        total += tp / (tp_fp + tp_fn - tp) / 6
    return total


COURSE_CMD = """
import sys; sys.path.insert(0, {bench!r})
from pathlib import Path
from evaluate_masks import course_read_masks, course_miou
p = course_read_masks(Path({pred!r})); g = course_read_masks(Path({gt!r}))
print(course_miou(p, g))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt", type=Path, default=REPO.parent / "shared/data/dlcv-p2/validation")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    from vislab.evaluate import evaluate_masks

    with tempfile.TemporaryDirectory() as tmp:
        gt_dir, pred_dir = Path(tmp) / "gt", Path(tmp) / "pred"
        gt_dir.mkdir()
        pred_dir.mkdir()
        masks = sorted(args.gt.glob("*_mask.png"))
        for m in masks:
            (gt_dir / m.name).symlink_to(m.resolve())
        for m, src in zip(masks, masks[1:] + masks[:1], strict=True):  # roll by one tile
            (pred_dir / (m.name.replace("_mask", ""))).symlink_to(src.resolve())

        times = {"course": [], "vislab": [], "course_cmd": [], "vislab_cmd": []}
        for _ in range(args.repeats):
            t = time.perf_counter()
            ref = course_miou(course_read_masks(pred_dir), course_read_masks(gt_dir))
            times["course"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ours = evaluate_masks(gt_dir, pred_dir)["miou"]
            times["vislab"].append(time.perf_counter() - t)
            code = COURSE_CMD.format(bench=str(REPO / "bench"), pred=str(pred_dir), gt=str(gt_dir))
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            times["course_cmd"].append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "vislab",
                    "evaluate",
                    "--gt",
                    str(gt_dir),
                    "--pred",
                    str(pred_dir),
                ],
                check=True,
                capture_output=True,
            )
            times["vislab_cmd"].append(time.perf_counter() - t)
    assert abs(ref - ours) < 1e-9, (ref, ours)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{len(masks)} masks, mIoU {ours:.6f} (both), medians of {args.repeats}")
    print("| what | course-style s | vislab s | speed-up |")
    print("|---|---|---|---|")
    print(
        f"| reader + scorer, in-process | {med['course']:.2f} | {med['vislab']:.2f} | "
        f"{med['course'] / med['vislab']:.1f}x |"
    )
    print(
        f"| whole command | {med['course_cmd']:.2f} | {med['vislab_cmd']:.2f} | "
        f"{med['course_cmd'] / med['vislab_cmd']:.1f}x |"
    )


if __name__ == "__main__":
    main()
