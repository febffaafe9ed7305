"""Peak memory of `vislab predict` on one large tile, against vislab's own estimate of it.

    python bench/predict_memory.py --ckpt RUN/checkpoints/best.ckpt --size 6000 \
        [--src OTHER_CHECKOUT/src ...]

Writes one single-colour SIZE x SIZE JPEG (a few kilobytes on disk), predicts it with the
segmenter's checkpoint in a process of its own for each source tree given (default: this
checkout's), and prints each process's peak resident memory (GNU time's %M) beside
`predict_bytes`, the estimate `vislab predict` checks against the free memory before it
predicts a tile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parents[1] / "src"


def peak_kib(src: Path, ckpt: Path, images: Path, out: Path) -> int:
    """Peak resident KiB of one `vislab predict` run with src first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "vislab", "predict"]
    cmd += ["--ckpt", str(ckpt), "--images", str(images), "--out", str(out), "--threads", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{src}: predict failed:\n{done.stderr}")
    return int(done.stderr.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, required=True, help="a segmenter's checkpoint")
    ap.add_argument("--size", type=int, default=6000, help="the tile's side in pixels")
    ap.add_argument("--src", type=Path, action="append", help="a vislab source tree")
    args = ap.parse_args()

    sys.path.insert(0, str(HERE))
    from vislab.infer.checkpoint import load_model
    from vislab.infer.predict import predict_bytes

    _, meta = load_model(args.ckpt)
    estimate = predict_bytes(args.size, args.size, meta)
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "tiles"
        images.mkdir()
        Image.new("RGB", (args.size, args.size), (90, 140, 60)).save(images / "0000_sat.jpg")
        print(f"{args.size}x{args.size} tile, {meta.num_classes} classes, scale {meta.scale}")
        print(f"vislab's estimate: {estimate / 2**30:.2f} GiB")
        for src in args.src or [HERE]:
            kib = peak_kib(src.resolve(), args.ckpt, images, Path(tmp) / "out")
            print(f"{src}: peak resident {kib / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
