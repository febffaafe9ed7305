"""Scoring the 257 validation masks: `vislab evaluate` against the course's own
mean_iou_evaluate.py, both as whole commands (python start-up and imports included), side by
side, alternating, medians of --repeats. Both score the same prediction folder: the ground
truth rolled by one tile, so every class has errors. Their printed lines are asserted equal.

    python bench/evaluate_masks.py [--gt ../shared/data/dlcv-p2/validation]
        [--course ../shared/course] [--course-python ~/.cache/vislab/course-py38/bin/python]
        [--repeats 5]

--course-python runs the course's script in another environment (default: this Python).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, done.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt", type=Path, default=REPO.parent / "shared/data/dlcv-p2/validation")
    p.add_argument("--course", type=Path, default=REPO.parent / "shared/course")
    p.add_argument("--course-python", default=sys.executable)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    script = args.course / "mean_iou_evaluate.py"
    with tempfile.TemporaryDirectory() as tmp:
        gt_dir, pred_dir = Path(tmp) / "gt", Path(tmp) / "pred"
        gt_dir.mkdir()
        pred_dir.mkdir()
        masks = sorted(args.gt.glob("*_mask.png"))
        for m in masks:
            (gt_dir / m.name).symlink_to(m.resolve())
        for m, src in zip(masks, masks[1:] + masks[:1], strict=True):  # roll by one tile
            (pred_dir / (m.name.replace("_mask", ""))).symlink_to(src.resolve())
        course_cmd = [args.course_python, "-W", "ignore", str(script), "-g", str(gt_dir)]
        course_cmd += ["-p", str(pred_dir)]
        ours_cmd = [sys.executable, "-W", "ignore", "-m", "vislab", "evaluate"]
        ours_cmd += ["--gt", str(gt_dir), "--pred", str(pred_dir)]
        times = {"course": [], "vislab": []}
        for _ in range(args.repeats):
            t, course_out = timed(course_cmd)
            times["course"].append(t)
            t, ours_out = timed(ours_cmd)
            times["vislab"].append(t)
            assert ours_out == course_out, (ours_out, course_out)
    c, v = (statistics.median(times[k]) for k in ("course", "vislab"))
    mean = course_out.strip().splitlines()[-1]
    print(f"{len(masks)} masks, {mean} (printed alike), medians of {args.repeats}")
    print("| what | mean_iou_evaluate.py s | vislab evaluate s | speed-up |")
    print("|---|---|---|---|")
    print(f"| whole command | {c:.2f} | {v:.2f} | {c / v:.1f}x |")


if __name__ == "__main__":
    main()
