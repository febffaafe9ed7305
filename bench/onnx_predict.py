"""PyTorch against ONNX Runtime for `vislab predict`, side by side in one process.

Exports the checkpoint with `vislab export --format onnx`, loads both files the way
`vislab predict` does, and runs the same inputs through each, interleaved over --repeats rounds
so that machine noise hits both alike. Reports median images/s, the ratio, the fraction of
predictions (images or pixels) that agree and the largest logit difference.

    python bench/onnx_predict.py --ckpt runs/p1_model_a/checkpoints/best.ckpt --threads 1
    python bench/onnx_predict.py --ckpt runs/deeplab/checkpoints/best.ckpt --n 8 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vislab.data.batches import normalize
from vislab.data.images import load_unlabeled
from vislab.data.tiles import load_tiles
from vislab.infer.checkpoint import load_model
from vislab.infer.export import export
from vislab.infer.forward import as_input, prepare, tile_logits

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@torch.inference_mode()
def logits(model, meta, images: torch.Tensor, batch: int) -> tuple[float, torch.Tensor]:
    """(images/s, logits) of the whole set, in predict's batches."""
    mean, std = torch.tensor(meta.mean), torch.tensor(meta.std)
    model = prepare(model)
    out = []
    t = time.perf_counter()
    for i in range(0, len(images), batch):
        x = as_input(normalize(images[i : i + batch], mean, std))
        if meta.task == "segmentation":  # windows of the training's size, as predict does
            out.append(tile_logits(model, x, meta, batch=batch))
        else:
            out.append(model(x))
    return len(images) / (time.perf_counter() - t), torch.cat(out).float()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--n", type=int, help="images (default: all of val_50; 8 tiles)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        onnx_path = export(args.ckpt, "onnx", Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - t
        engines = {"pytorch": load_model(args.ckpt), "onnxruntime": load_model(onnx_path)}
        meta = engines["pytorch"][1]
        if meta.task == "segmentation":
            images = load_tiles(DATA / "dlcv-p2" / "validation", limit=args.n or 8).images
            batch = 4
        else:
            images = load_unlabeled(DATA / "dlcv-p1" / "val_50").images[: args.n]
            batch = 500
        images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        rates = {k: [] for k in engines}
        out = {}
        for _ in range(args.repeats):
            for k, (model, m) in engines.items():
                rate, out[k] = logits(model, m, images, batch)
                rates[k].append(rate)
    agree = (out["pytorch"].argmax(1) == out["onnxruntime"].argmax(1)).float().mean()
    diff = (out["pytorch"] - out["onnxruntime"]).abs().max()
    print(
        f"{meta.model}: {len(images)} images, {args.threads} thread(s), medians of "
        f"{args.repeats}; export took {export_s:.1f} s"
    )
    print("| engine | img/s | ratio to pytorch |")
    print("|---|---|---|")
    base = statistics.median(rates["pytorch"])
    for k, r in rates.items():
        print(f"| {k} | {statistics.median(r):.2f} | {statistics.median(r) / base:.2f} |")
    print(f"predictions that agree: {float(agree):.6f}; largest logit difference {float(diff):.2e}")


if __name__ == "__main__":
    main()
