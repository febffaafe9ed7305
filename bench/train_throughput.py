"""Training throughput of Model A: vislab (Lightning) against a bare PyTorch loop.

Both run the same model, batch size, precision, memory format and thread count on the same
decoded images, alternating in one process so that machine noise hits both alike; we report
medians over the repeats and the ratio vislab / bare. Throughput is the training phase of one
epoch (vislab's metrics.csv column train_img_per_s; validation and checkpoints excluded).

    python bench/train_throughput.py [--data ../shared/data/dlcv-p1] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vislab.config import load_config
from vislab.data.batches import channel_stats, normalize
from vislab.data.images import load_labeled
from vislab.models import create_model
from vislab.train.run import train

REPO = Path(__file__).resolve().parents[1]
SETTINGS = [("32-true", False), ("32-true", True), ("bf16-mixed", True), ("bf16-mixed", False)]


def bare_loop(images, labels, stats, precision: str, channels_last: bool, batch: int) -> float:
    """One epoch of the plainest correct loop; returns images per second."""
    torch.manual_seed(0)
    model = create_model("model_a", num_classes=50)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    mean, std = (torch.tensor(v) for v in stats)
    order = torch.randperm(len(images))
    model.train()
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        idx = order[i : i + batch]
        x = normalize(images[idx], mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(images) / (time.perf_counter() - t0)


def vislab_epoch(data: Path, per_class: int, precision: str, channels_last: bool) -> float:
    overrides = [
        f"data.root={data}",
        f"data.max_per_class={per_class}",
        "trainer.epochs=1",
        f"trainer.precision={precision}",
        f"trainer.channels_last={str(channels_last).lower()}",
        f"trainer.threads={torch.get_num_threads()}",
        "trainer.progress_bar=true",
    ]
    cfg = load_config(REPO / "configs" / "p1_model_a.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run")
        with open(Path(tmp) / "run" / "metrics.csv", newline="") as f:
            return float(next(csv.DictReader(f))["train_img_per_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "dlcv-p1")
    p.add_argument("--per-class", type=int, default=200, help="train images per class")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    s = load_labeled(args.data / "train_50", max_per_class=args.per_class)
    stats = channel_stats(torch.from_numpy(s.images))
    images = torch.from_numpy(s.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(s.labels)
    results = {k: {"bare": [], "vislab": []} for k in SETTINGS}
    for rep in range(args.repeats):
        for prec, cl in SETTINGS:
            results[(prec, cl)]["bare"].append(bare_loop(images, labels, stats, prec, cl, 64))
            results[(prec, cl)]["vislab"].append(vislab_epoch(args.data, args.per_class, prec, cl))
            torch.set_num_threads(args.threads)
        print(f"repeat {rep + 1}/{args.repeats} done", flush=True)
    base = statistics.median(results[SETTINGS[0]]["bare"])
    print(
        f"\nModel A, batch 64, {len(images)} images, {args.threads} thread(s), "
        f"medians of {args.repeats}"
    )
    print(
        "| precision | channels_last | bare img/s | vislab img/s | vislab / bare | "
        "bare speed-up vs fp32 |"
    )
    print("|---|---|---|---|---|---|")
    for prec, cl in SETTINGS:
        b = statistics.median(results[(prec, cl)]["bare"])
        v = statistics.median(results[(prec, cl)]["vislab"])
        print(f"| {prec} | {cl} | {b:.0f} | {v:.0f} | {v / b:.2f} | {b / base:.2f} |")


if __name__ == "__main__":
    main()
