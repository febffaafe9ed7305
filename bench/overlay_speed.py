"""The mask overlay: vislab's vectorised version against a course-style per-pixel loop.

The course-style overlay visits every pixel in Python and looks 5 pixels along its row and
column for another class. Per tile: medians of --repeats, in-process, outputs asserted equal.
Whole command: a course-style script over a folder of 20 tiles against `vislab overlay` on
the same folder (python start-up and imports included).

    python bench/overlay_speed.py [--val ../shared/data/dlcv-p2/validation] [--repeats 3]
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
COLORS = np.array(
    [
        [0, 255, 255],
        [255, 255, 0],
        [255, 0, 255],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
    ],
    dtype=np.float64,
)
CODE_TO_CLASS = {3: 0, 6: 1, 5: 2, 2: 3, 1: 4, 7: 5, 0: 6, 4: 6}


def course_read_mask(path: Path) -> np.ndarray:
    rgb = (np.asarray(Image.open(path)) >= 128).astype(int)
    code = 4 * rgb[..., 0] + 2 * rgb[..., 1] + rgb[..., 2]
    mask = np.zeros(code.shape, dtype=np.int64)
    for c, cls in CODE_TO_CLASS.items():
        mask[code == c] = cls
    return mask


def course_overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    out = image.astype(np.float64) * 0.7 + COLORS[mask] * 0.3
    for y in range(h):
        for x in range(w):
            c = mask[y, x]
            row = mask[y, max(0, x - 5) : x + 6]
            col = mask[max(0, y - 5) : y + 6, x]
            if (row != c).any() or (col != c).any():
                out[y, x] = COLORS[c]
    return np.round(out).astype(np.uint8)


COURSE_CMD = """
import sys; sys.path.insert(0, {bench!r})
from pathlib import Path
import numpy as np
from PIL import Image
from overlay_speed import course_overlay, course_read_mask
src, out = Path({src!r}), Path({out!r})
out.mkdir(exist_ok=True)
for sat in sorted(src.glob("*_sat.jpg")):
    tile = sat.name[:-8]
    img = np.asarray(Image.open(sat).convert("RGB"))
    Image.fromarray(course_overlay(img, course_read_mask(src / (tile + "_mask.png")))).save(
        out / (tile + ".png"))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val", type=Path, default=REPO.parent / "shared/data/dlcv-p2/validation")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from vislab.data.landcover import read_mask
    from vislab.overlay import overlay

    tiles = sorted(args.val.glob("*_sat.jpg"))[:20]
    image = np.asarray(Image.open(tiles[0]).convert("RGB"))
    mask_path = str(tiles[0]).replace("_sat.jpg", "_mask.png")
    course_t, ours_t = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ref = course_overlay(image, course_read_mask(Path(mask_path)))
        course_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = overlay(image, read_mask(Path(mask_path))[0])
        ours_t.append(time.perf_counter() - t)
    assert np.array_equal(ref, ours)

    cmd_course, cmd_ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tiles"
        src.mkdir()
        for sat in tiles:
            (src / sat.name).symlink_to(sat.resolve())
            mask = sat.with_name(sat.name.replace("_sat.jpg", "_mask.png"))
            (src / mask.name).symlink_to(mask.resolve())
        for i in range(args.repeats):
            code = COURSE_CMD.format(bench=str(REPO / "bench"), src=str(src), out=f"{tmp}/c{i}")
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            cmd_course.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "vislab",
                    "overlay",
                    "--image",
                    str(src),
                    "--mask",
                    str(src),
                    "--out",
                    f"{tmp}/v{i}",
                ],
                check=True,
                capture_output=True,
            )
            cmd_ours.append(time.perf_counter() - t)
        for tile in tiles:
            name = tile.name.replace("_sat.jpg", ".png")
            assert (
                Image.open(f"{tmp}/c0/{name}").tobytes() == Image.open(f"{tmp}/v0/{name}").tobytes()
            )
    a, b = statistics.median(course_t), statistics.median(ours_t)
    c, d = statistics.median(cmd_course), statistics.median(cmd_ours)
    print(f"overlay, medians of {args.repeats}; outputs equal")
    print("| what | course-style s | vislab s | speed-up |")
    print("|---|---|---|---|")
    print(f"| one 512x512 tile (decode + overlay) | {a:.3f} | {b:.3f} | {a / b:.0f}x |")
    print(f"| whole command, folder of {len(tiles)} tiles | {c:.2f} | {d:.2f} | {c / d:.1f}x |")


if __name__ == "__main__":
    main()
