"""The mask overlay of 20 validation tiles: `vislab overlay` on the folder against the course's
own viz_mask.py, which draws one tile per command (./exp.png), run once per tile as a shell
loop would; both as whole commands (python start-up included), alternating, medians of
--repeats. Every overlay is asserted pixel-equal.

    python bench/overlay_speed.py [--val ../shared/data/dlcv-p2/validation]
        [--course ../shared/course] [--repeats 3]
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val", type=Path, default=REPO.parent / "shared/data/dlcv-p2/validation")
    p.add_argument("--course", type=Path, default=REPO.parent / "shared/course")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    script = str(args.course / "viz_mask.py")
    tiles = sorted(args.val.glob("*_sat.jpg"))[:20]
    course_t, ours_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tiles"
        src.mkdir()
        for sat in tiles:
            (src / sat.name).symlink_to(sat.resolve())
            mask = sat.with_name(sat.name.replace("_sat.jpg", "_mask.png"))
            (src / mask.name).symlink_to(mask.resolve())
        for i in range(args.repeats):
            out = Path(tmp) / f"c{i}"
            out.mkdir()
            t = time.perf_counter()
            for sat in sorted(src.glob("*_sat.jpg")):
                tile = sat.name[: -len("_sat.jpg")]
                subprocess.run(
                    [sys.executable, "-W", "ignore", script, "--img_path", str(sat)]
                    + ["--seg_path", str(src / f"{tile}_mask.png")],
                    check=True,
                    capture_output=True,
                    cwd=out,
                )
                (out / "exp.png").rename(out / f"{tile}.png")
            course_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-W", "ignore", "-m", "vislab", "overlay", "--image", str(src)]
                + ["--mask", str(src), "--out", f"{tmp}/v{i}"],
                check=True,
                capture_output=True,
            )
            ours_t.append(time.perf_counter() - t)
        for tile in tiles:
            name = tile.name.replace("_sat.jpg", ".png")
            course = np.asarray(Image.open(f"{tmp}/c0/{name}"))
            assert np.array_equal(course, np.asarray(Image.open(f"{tmp}/v0/{name}"))), name
    c, v = statistics.median(course_t), statistics.median(ours_t)
    print(f"overlay of {len(tiles)} tiles, medians of {args.repeats}; every overlay pixel-equal")
    print("| what | viz_mask.py s | vislab overlay s | speed-up |")
    print("|---|---|---|---|")
    print(f"| {len(tiles)} tiles, whole commands | {c:.2f} | {v:.2f} | {c / v:.1f}x |")


if __name__ == "__main__":
    main()
