"""The course's two commands as the course runs them, on the course's amounts of input.

`bash hw1_1.sh IMG_DIR OUT_CSV` on 5,000 images (the 2,500 of val_50 and the first 2,500 of
train_50) and `bash hw1_2.sh IMG_DIR OUT_DIR` on 313 tiles (the 257 validation tiles and the
first 56 train tiles), each within 10 minutes. The input folders hold symbolic links to the
real data; each command runs --repeats times as a whole process (start-up included), and the
median wall time is reported with the limit. Two versions of each script: the repository's
(vislab's own environment), and, with --course-env, those of a `vislab submission` folder of
the same checkpoints run with that environment's python3 (the course's Python 3.8 and pins,
as tests/test_submission.py builds it).

    python bench/course_scripts.py --p1 runs/p1_lite/checkpoints/best.ckpt \
        --p2 runs/p2_lite/checkpoints/best.ckpt [--data ../shared/data] [--repeats 1] \
        [--course-env ~/.cache/vislab/course-py38]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 600  # the course's limit for each command


def _link(files: list[Path], names: list[str], folder: Path) -> Path:
    folder.mkdir()
    for name, f in zip(names, files, strict=True):
        (folder / name).symlink_to(f.resolve())
    return folder


def _time(cmd: list[str], env: dict[str, str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p1", type=Path, required=True, help="checkpoint for hw1_1.sh")
    ap.add_argument("--p2", type=Path, required=True, help="checkpoint for hw1_2.sh")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--course-env", type=Path, help="a virtual environment of the course's pins")
    args = ap.parse_args()
    p1, p2 = args.data / "dlcv-p1", args.data / "dlcv-p2"
    images = sorted((p1 / "val_50").glob("*.png")) + sorted((p1 / "train_50").glob("*.png"))
    tiles = sorted((p2 / "validation").glob("*_sat.jpg")) + sorted((p2 / "train").glob("*_sat.jpg"))
    env = dict(os.environ, VISLAB_P1_CKPT=str(args.p1), VISLAB_P2_CKPT=str(args.p2))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the course names test tiles xxxx.jpg; the train tiles get ids after the validation's
        tile_dir = _link(tiles[:313], [f"{i:04d}.jpg" for i in range(313)], tmp / "tiles")
        img_dir = _link(images[:5000], [f.name for f in images[:5000]], tmp / "images")
        versions = [("repository", REPO, env)]
        if args.course_env:
            folder = tmp / "hw1"
            cmd = [sys.executable, "-m", "vislab", "submission", "--p1", str(args.p1)]
            cmd += ["--p2", str(args.p2)]
            subprocess.run([*cmd, "--out", str(folder)], check=True, stdout=subprocess.DEVNULL)
            course = {"PATH": f"{args.course_env.resolve() / 'bin'}:/usr/bin:/bin"}
            versions.append(("submission, course env", folder, course))
        for version, where, version_env in versions:
            for script, inp, out, n in (
                ("hw1_1.sh", img_dir, tmp / version / "pred.csv", 5000),
                ("hw1_2.sh", tile_dir, tmp / version / "masks", 313),
            ):
                cmd = ["bash", str(where / script), str(inp), str(out)]
                times = _time(cmd, version_env, args.repeats)
                med = statistics.median(times)
                print(
                    f"{script} ({version}) on {n} inputs: {med:.1f} s (median of {len(times)}; "
                    f"{', '.join(f'{t:.1f}' for t in times)}), limit {LIMIT_S} s, "
                    f"{med / LIMIT_S:.0%} of it"
                )
        if args.course_env:
            a, b = (tmp / v / "pred.csv" for v in ("repository", "submission, course env"))
            print(f"the two CSVs are {'equal' if a.read_text() == b.read_text() else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
