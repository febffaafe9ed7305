"""Training from the decoded set in memory against the memory-mapped disk cache (data.store):
peak memory of a training process, and epoch time, side by side.

memory: a generated segmentation set (--tiles tiles of --size px, hard links to 40 distinct
generated tiles, so that it takes little disk), decoded to --tiles x size^2 x 4 bytes, trained
for one epoch on 256-px crops with configs/p2_cpu.yaml at data.store=memory and =disk; the
child's /proc status is sampled every 0.1 s (its anonymous memory, and its resident file
pages: the mapped cache, which the kernel can drop and read again).

speed: a recipe on a data folder (e.g. configs/p1_model_a.yaml on the course's P1 set), each
store in turn over --repeats rounds (the cache built before the first round), the median
epoch time of each and their ratio.

    python bench/store_memory.py memory --tiles 2000 --size 1000 --work /tmp/store_bench
    python bench/store_memory.py speed --recipe configs/p1_model_a.yaml \\
        --data ../shared/data/dlcv-p1 --epochs 2 --repeats 3 --work /tmp/store_bench
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("RssAnon", "RssFile", "VmRSS")


def generate(root: Path, tiles: int, size: int) -> Path:
    """root/train with `tiles` tiles (hard links to 40 generated ones) and root/validation
    with 8; kept between runs."""
    from vislab.data.synthetic import write_tile_folder

    train = root / "train"
    if (train / f"{tiles - 1:04d}_mask.png").is_file():
        return root
    write_tile_folder(root / "validation", 8, size, seed=2)
    unique = root / "unique"
    write_tile_folder(unique, 40, size, seed=1)
    train.mkdir(parents=True, exist_ok=True)
    for i in range(tiles):
        for kind in ("sat.jpg", "mask.png"):
            os.link(unique / f"{i % 40:04d}_{kind}", train / f"{i:04d}_{kind}")
    return root


def _status(pid: int) -> dict[str, int]:
    """kB of each FIELDS entry of /proc/pid/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in FIELDS:
                out[key] = int(line.split()[1])
    return out


def train(recipe: str, data: Path, out: Path, sets: list[str]) -> tuple[float, dict[str, int]]:
    """Train in a child process; returns (wall seconds, peak kB of each FIELDS)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "vislab", "train", recipe, "--data", str(data), "--out", str(out)]
    for s in [*sets, "trainer.progress_bar=false"]:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = dict.fromkeys(FIELDS, 0)

    def sample() -> None:
        while child.poll() is None:
            try:
                for k, v in _status(child.pid).items():
                    peak[k] = max(peak[k], v)
            except (OSError, ValueError):
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=sample)
    watcher.start()
    log, _ = child.communicate()
    watcher.join()
    if child.returncode != 0:
        raise SystemExit(f"training failed:\n{log[-3000:]}")
    return time.perf_counter() - t0, peak


def epoch_seconds(run: Path) -> list[float]:
    with (run / "metrics.csv").open(newline="") as f:
        return [float(r["epoch_s"]) for r in csv.DictReader(f)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["memory", "speed"])
    p.add_argument("--work", type=Path, required=True, help="generated data, cache and runs")
    p.add_argument("--tiles", type=int, default=2000)
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--recipe", default=str(REPO / "configs" / "p1_model_a.yaml"))
    p.add_argument("--data", type=Path)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    os.environ["VISLAB_CACHE"] = str(args.work / "cache")
    common = [f"trainer.threads={args.threads}"]
    if args.what == "memory":
        data = generate(args.work / "data", args.tiles, args.size)
        gb = args.tiles * args.size**2 * 4 / 1e9
        print(f"{args.tiles} tiles of {args.size} px: {gb:.2f} GB decoded (images + masks)")
        sets = [*common, "data.image_size=null", "data.crop_size=256", "trainer.epochs=1"]
        recipe = str(REPO / "configs" / "p2_cpu.yaml")
        for store in ("disk", "memory"):
            wall, peak = train(recipe, data, args.work / store, [*sets, f"data.store={store}"])
            shown = ", ".join(f"{k} {v / 2**20:.2f} GiB" for k, v in peak.items())
            (epoch,) = epoch_seconds(args.work / store)
            print(f"{store}: peak {shown}; epoch {epoch:.0f} s, {wall:.0f} s in all")
        return
    if args.data is None:
        raise SystemExit("speed: give --data")
    sets = [*common, f"trainer.epochs={args.epochs}"]
    # the cache built once before the rounds: the rounds measure training, not decoding
    train(
        args.recipe, args.data, args.work / "warm", [*sets, "trainer.epochs=1", "data.store=disk"]
    )
    times: dict[str, list[float]] = {"memory": [], "disk": []}
    for _ in range(args.repeats):
        for store in times:
            run = args.work / f"speed_{store}"
            train(args.recipe, args.data, run, [*sets, f"data.store={store}"])
            times[store] += epoch_seconds(run)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k}: epochs of {', '.join(f'{t:.1f}' for t in v)} s; median {med[k]:.2f} s")
    print(f"disk cache speed against memory: {med['memory'] / med['disk']:.3f}x")


if __name__ == "__main__":
    main()
