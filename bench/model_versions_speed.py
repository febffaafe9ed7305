"""Training speed of one model as two vislab checkouts build it, interleaved, each measurement
in a fresh process that imports vislab from its checkout's src/ (two versions of one package
cannot share a process).

Each --build is LABEL=SRC:NAME:KWARGS (KWARGS as JSON); the first is the reference. Prints
median images/s per build over --repeats rounds and each build's ratio to the reference.

    git worktree add /tmp/before <commit>
    python bench/model_versions_speed.py --size 32 --batch 64 --task classification \\
        --build 'before=/tmp/before/src:efficientnet_lite0:{"input_size": 144}' \\
        --build 'now=src:timm/tf_efficientnet_lite0:{"input_size": 144}'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def worker(name: str, kwargs: dict, task: str, size: int, batch: int, steps: int) -> float:
    """images/s of steps SGD steps (after one warm-up step) on random data, channels_last."""
    import torch
    import torch.nn.functional as F

    from vislab.models import create_model

    torch.manual_seed(0)
    classes = 7 if task == "segmentation" else 50
    model = create_model(name, num_classes=classes, **kwargs).train()
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    shape = (batch, size, size) if task == "segmentation" else (batch,)
    y = torch.randint(0, classes, shape)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step():
        out = model(x)
        loss = F.cross_entropy(out["out"] if isinstance(out, dict) else out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def measure(build: str, args) -> float:
    label, spec = build.split("=", 1)
    src, name, kwargs = spec.split(":", 2)
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src), "OMP_NUM_THREADS": str(args.threads)}
    call = json.dumps([name, json.loads(kwargs), args.task, args.size, args.batch, args.steps])
    code = f"import sys, json; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    code += f"from model_versions_speed import worker; print(worker(*json.loads({call!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", action="append", required=True, help="LABEL=SRC:NAME:KWARGS")
    p.add_argument("--task", choices=["classification", "segmentation"], default="segmentation")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    rates: dict[str, list[float]] = {b.split("=", 1)[0]: [] for b in args.build}
    for _ in range(args.repeats):
        for b in args.build:
            rates[b.split("=", 1)[0]].append(measure(b, args))
    ref = statistics.median(next(iter(rates.values())))
    for label, r in rates.items():
        m = statistics.median(r)
        print(f"{label:<10} {m:8.2f} img/s (median of {len(r)})  x{m / ref:.3f}")


if __name__ == "__main__":
    main()
