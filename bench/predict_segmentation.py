"""Segmentation inference paths on the validation tiles, side by side in one process.

For each model: plain fp32, fp32 channels_last, and channels_last + bf16 autocast. Each path
predicts the same --n tiles (interleaved over --repeats rounds, so machine noise hits all
alike); we report the median images/s, the time that rate gives for all 257 tiles, and the
fraction of pixels whose predicted class equals the fp32 prediction.

    python bench/predict_segmentation.py --model deeplabv3_resnet50 [--ckpt CKPT] [--n 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from vislab.data.batches import normalize
from vislab.data.tiles import load_tiles
from vislab.devices import autocast
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import segment_logits
from vislab.models import create_model

REPO = Path(__file__).resolve().parents[1]
PATHS = {
    "fp32": ("32", False),
    "fp32 channels_last": ("32", True),
    "bf16 + channels_last": ("bf16", True),
}


@torch.inference_mode()
def run(
    model, images, mean, std, size, precision, channels_last, batch
) -> tuple[float, np.ndarray]:
    model = model.to(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    preds = []
    t = time.perf_counter()
    for i in range(0, len(images), batch):
        x = normalize(images[i : i + batch], mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(precision, torch.device("cpu")):
            preds.append(segment_logits(model, x, size).float().argmax(1))
    return len(images) / (time.perf_counter() - t), torch.cat(preds).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deeplabv3_resnet50")
    p.add_argument("--ckpt", type=Path, help="a trained checkpoint (else seeded random weights)")
    p.add_argument("--val", type=Path, default=REPO.parent / "shared/data/dlcv-p2/validation")
    p.add_argument("--n", type=int, default=8, help="tiles per measurement")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.ckpt:
        model, meta = load_model(args.ckpt, task="segmentation")
        mean, std, size, name = meta["mean"], meta["std"], meta["image_size"], meta["model"]
    else:
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=7).eval()
        mean, std, size, name = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], None, args.model
    tiles = load_tiles(args.val, limit=args.n)
    images = torch.from_numpy(tiles.images).permute(0, 3, 1, 2).contiguous()
    mean_t, std_t = torch.tensor(mean), torch.tensor(std)
    rates = {k: [] for k in PATHS}
    preds = {}
    for _ in range(args.repeats):
        for k, (prec, cl) in PATHS.items():
            rate, pred = run(model, images, mean_t, std_t, size, prec, cl, args.batch)
            rates[k].append(rate)
            preds[k] = pred
    weights = "trained checkpoint" if args.ckpt else "random weights"
    print(
        f"{name} ({weights}), {args.n} tiles of 512x512, batch {args.batch}, "
        f"{args.threads} thread(s), medians of {args.repeats}"
    )
    print("| path | img/s | 257 tiles (min) | pixels equal to fp32 |")
    print("|---|---|---|---|")
    for k in PATHS:
        r = statistics.median(rates[k])
        same = (preds[k] == preds["fp32"]).mean()
        print(f"| {k} | {r:.2f} | {257 / r / 60:.1f} | {same:.5f} |")


if __name__ == "__main__":
    main()
