"""`vislab progress`: predicted masks of chosen validation tiles at the early, middle and final
snapshot of a segmentation run, drawn as course overlays in one grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vislab.analysis.overlay import overlay
from vislab.course.landcover import read_mask, warn_red
from vislab.data.images import read_rgb
from vislab.data.tiles import find_pairs
from vislab.errors import VislabError
from vislab.fileio import atomic_savefig, atomic_write_bytes
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import model_inputs, prepare, segment_logits, to_nchw
from vislab.infer.meta import ModelMeta
from vislab.metrics.miou import confusion, scores
from vislab.run_folder import RunFolder

DEFAULT_TILES = ("0013", "0062", "0104")


@torch.inference_mode()
def predict_tile(model, meta: ModelMeta, image: np.ndarray) -> np.ndarray:
    (x,) = model_inputs(model, to_nchw(image), meta.mean, meta.std, 1)
    return segment_logits(model, x, meta.image_size).argmax(1)[0].numpy().astype(np.uint8)


def default_tiles(tiles: list[str]) -> tuple[str, ...]:
    """The report's tiles when the folder holds them (the course's validation set), else the
    first three of tiles (its ids, sorted)."""
    if all(t in tiles for t in DEFAULT_TILES):
        return DEFAULT_TILES
    return tuple(tiles[:3])


def progress(
    run: Path, out: Path | None = None, tiles: list[str] | None = None, data: Path | None = None
) -> dict[str, Any]:
    """Draw the grid; returns {"figure", "epochs", "miou": {tile: [per snapshot]}}."""
    run = RunFolder(run)
    cfg = run.config()
    if cfg.task != "segmentation":
        raise VislabError(f"{run.path} is a {cfg.task} run; progress draws segmentation runs")
    snaps = run.pick_snapshots()
    folder = data if data is not None else cfg.data.resolve(cfg.data.val)
    pairs = find_pairs(folder)
    tiles = list(tiles or default_tiles(list(pairs)))
    images, truths, red = [], [], {}
    for t in tiles:
        if t not in pairs:
            raise VislabError(
                f"no tile {t} in {folder} (pick tiles with --tiles, the folder with --data)"
            )
        sat, mask = pairs[t]
        images.append(read_rgb(sat))
        truth, red[mask.name] = read_mask(mask, images[-1].shape[:2])
        truths.append(truth)
    warn_red(red)
    epochs, preds = [], []
    for snap in snaps:
        model, meta = load_model(snap, task="segmentation")
        model = prepare(model)
        epochs.append(meta.epoch)
        preds.append([predict_tile(model, meta, im) for im in images])
    miou = {  # per tile: a class absent from the tile is left out of its mean
        t: [scores(confusion(truths[i], p[i], 7))["miou_present"] for p in preds]
        for i, t in enumerate(tiles)
    }
    from vislab.course.landcover import CLASSES

    def shares(masks: list[np.ndarray]) -> dict[str, float]:
        counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=len(CLASSES))
        return {c: float(n / counts.sum()) for c, n in zip(CLASSES, counts, strict=True)}

    out = Path(out) if out else run.progress_figure
    draw_grid(images, truths, preds, epochs, tiles, miou, out)
    result = {
        "figure": str(out),
        "epochs": epochs,
        "miou": miou,
        "truth_share": shares(truths),  # class shares of the pixels of the chosen tiles
        "predicted_share": [shares(p) for p in preds],
    }
    atomic_write_bytes(out.with_suffix(".json"), json.dumps(result, indent=1).encode())
    return result


def draw_grid(images, truths, preds, epochs, tiles, miou, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from vislab.course.landcover import CLASSES, COLORS

    stages = {1: ["final"], 2: ["early", "final"], 3: ["early", "middle", "final"]}[len(epochs)]
    cols = 2 + len(epochs)
    fig, axes = plt.subplots(len(tiles), cols, figsize=(3 * cols, 3 * len(tiles) + 0.6))
    axes = np.atleast_2d(axes)
    for r, t in enumerate(tiles):
        panels = [(images[r], f"{t}: satellite"), (overlay(images[r], truths[r]), "ground truth")]
        for k, e in enumerate(epochs):
            title = f"{stages[k]}: epoch {e}\nmIoU {miou[t][k]:.3f}"
            panels.append((overlay(images[r], preds[k][r]), title))
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    handles = [Patch(color=COLORS[i] / 255, label=n) for i, n in enumerate(CLASSES)]
    for h in handles:
        h.set_edgecolor("0.5")
    fig.legend(handles=handles, loc="lower center", ncol=len(CLASSES), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, out, dpi=100)
    plt.close(fig)
