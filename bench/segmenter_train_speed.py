"""Training speed of segmenters per precision and memory format, side by side in one process.

Interleaves every model of --models in every setting of --settings (fp32, fp32 channels_last,
bf16 autocast + channels_last) over --repeats rounds on random 256x256 batches (the CPU
recipe's resolution) and prints median images/s, relative to the first row.

    python bench/segmenter_train_speed.py [--models lraspp_mobilenet_v3,fcn32s_vgg16]
        [--settings "fp32 channels_last"] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from vislab.models import create_model

SETTINGS = {"fp32": False, "fp32 channels_last": True, "bf16 + channels_last": True}


def steps_per_second(name: str, bf16: bool, channels_last: bool, x, y, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)["out"]
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(x) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lraspp_mobilenet_v3", help="comma-separated")
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 7, (args.batch, args.size, args.size))
    settings = args.settings.split(",")
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        p.error(f"unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    rows = [(m, k) for m in args.models.split(",") for k in settings]
    rates = {row: [] for row in rows}
    for _ in range(args.repeats):
        for m, k in rows:
            bf16 = k.startswith("bf16")
            rates[m, k].append(steps_per_second(m, bf16, SETTINGS[k], x, y, args.steps))
    print(
        f"batch {args.batch} at {args.size}x{args.size}, {args.threads} thread(s), "
        f"medians of {args.repeats}"
    )
    print("| model | setting | img/s | vs the first row |")
    print("|---|---|---|---|")
    base = statistics.median(rates[rows[0]])
    for m, k in rows:
        r = statistics.median(rates[m, k])
        print(f"| {m} | {k} | {r:.1f} | {r / base:.2f} |")


if __name__ == "__main__":
    main()
