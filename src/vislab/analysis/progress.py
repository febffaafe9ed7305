"""`vislab progress`: predicted masks of chosen validation tiles at the early, middle and final
snapshot of a segmentation run, drawn as overlays in the colours of the run's data set spec
(the snapshots' metadata) in one grid, with each tile's mIoU over the spec's classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vislab.analysis.overlay import overlay
from vislab.data.images import read_rgb
from vislab.data.spec import DatasetSpec
from vislab.data.tiles import find_pairs
from vislab.errors import VislabError
from vislab.fileio import atomic_savefig, atomic_write_bytes, staged_beside
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import model_inputs, prepare, segment_logits, to_nchw
from vislab.infer.meta import ModelMeta, read_meta
from vislab.metrics.miou import confusion, scores
from vislab.run_folder import RunFolder
from vislab.steps import Steps

DEFAULT_TILES = ("0013", "0062", "0104")  # the report's, of the course's validation set


@torch.inference_mode()
def predict_tile(model, meta: ModelMeta, image: np.ndarray) -> np.ndarray:
    (x,) = model_inputs(model, to_nchw(image), meta.mean, meta.std, 1)
    logits = segment_logits(model, x, meta.image_size)
    return logits.argmax(1)[0].cpu().numpy().astype(np.uint8)


def default_tiles(tiles: list[str], spec: DatasetSpec | None = None) -> tuple[str, ...]:
    """The report's tiles for a land-cover run whose folder holds them (the course's
    validation set), else the first three of tiles (its ids, sorted)."""
    landcover = spec is None or spec.name == "landcover"
    if landcover and all(t in tiles for t in DEFAULT_TILES):
        return DEFAULT_TILES
    return tuple(tiles[:3])


def read_tiles(
    folder: Path, tiles: list[str] | None, spec: DatasetSpec
) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """(ids, images, true class-index masks) of the chosen tiles of folder (default
    default_tiles'), the masks read through spec."""
    pairs = find_pairs(folder)
    tiles = list(tiles or default_tiles(list(pairs), spec))
    images, truths, ruled = [], [], {}
    for t in tiles:
        if t not in pairs:
            raise VislabError(
                f"no tile {t} in {folder} (pick tiles with --tiles, the folder with --data)"
            )
        sat, mask = pairs[t]
        images.append(read_rgb(sat))
        truth, ruled[mask.name] = spec.read_mask(mask, images[-1].shape[:2])
        truths.append(truth)
    spec.warn_rule(ruled)
    return tiles, images, truths


def _shares(masks: list[np.ndarray], spec: DatasetSpec) -> dict[str, float]:
    """Each class's share of the masks' pixels (ignored pixels left out)."""
    counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=spec.num_classes)
    counts = counts[: spec.num_classes]
    total = max(int(counts.sum()), 1)
    return {c: float(n / total) for c, n in zip(spec.classes, counts, strict=True)}


def _tile_miou(truth: np.ndarray, pred: np.ndarray, spec: DatasetSpec) -> float:
    """A tile's mIoU over spec's scored classes; a class absent from the tile is left out."""
    cm = confusion(truth, pred, spec.num_classes, spec.ignore_index)
    return scores(cm, spec)["miou_present"]


def progress(
    run: Path,
    out: Path | None = None,
    tiles: list[str] | None = None,
    data: Path | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Draw the grid, each snapshot predicting on device (default the CPU); returns
    {"figure", "epochs", "miou": {tile: [per snapshot]}, "truth_share", "predicted_share"}.
    The figure and its numbers (out and out.json) land together at the end or not at all,
    their folder held for this command alone meanwhile (staged_beside)."""
    run = RunFolder(run)
    cfg = run.config()
    if cfg.task != "segmentation":
        raise VislabError(f"{run.path} is a {cfg.task} run; progress draws segmentation runs")
    option = "--out" if out is not None else "the progress figure"
    out = Path(out) if out else run.progress_figure
    with staged_beside(out, option) as scratch:
        return _progress(run, out, scratch, tiles, data, device)


def _progress(
    run: RunFolder,
    out: Path,
    scratch: Path,
    tiles: list[str] | None,
    data: Path | None,
    device: torch.device | None,
) -> dict[str, Any]:
    """progress's work, its files written into scratch under out's names."""
    snaps = run.pick_snapshots()
    spec = read_meta(snaps[-1]).spec()
    folder = data if data is not None else run.val_folder()
    tiles, images, truths = read_tiles(folder, tiles, spec)
    epochs, preds = [], []
    steps = Steps(len(snaps), "progress", "snapshots")
    for snap in snaps:  # one model in memory at a time
        model, meta = load_model(snap, task="segmentation", device=device)
        model = prepare(model)
        epochs.append(meta.epoch)
        preds.append([predict_tile(model, meta, im) for im in images])
        steps.step(note=f"epoch {meta.epoch}")
    steps.close()
    miou = {t: [_tile_miou(truths[i], p[i], spec) for p in preds] for i, t in enumerate(tiles)}
    result = {
        "figure": str(out),
        "epochs": epochs,
        "miou": miou,
        "truth_share": _shares(truths, spec),  # class shares of the chosen tiles' pixels
        "predicted_share": [_shares(p, spec) for p in preds],
    }
    draw_grid(images, truths, preds, epochs, tiles, miou, scratch / out.name, spec)
    text = json.dumps(result, indent=1).encode()
    atomic_write_bytes(scratch / out.with_suffix(".json").name, text)
    return result


def draw_grid(images, truths, preds, epochs, tiles, miou, out: Path, spec: DatasetSpec) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    stages = {1: ["final"], 2: ["early", "final"], 3: ["early", "middle", "final"]}[len(epochs)]
    cols = 2 + len(epochs)
    fig, axes = plt.subplots(len(tiles), cols, figsize=(3 * cols, 3 * len(tiles) + 0.6))
    axes = np.atleast_2d(axes)
    colors = spec.colors
    kind = "satellite" if spec.name == "landcover" else "image"
    for r, t in enumerate(tiles):
        truth = overlay(images[r], truths[r], colors=colors)
        panels = [(images[r], f"{t}: {kind}"), (truth, "ground truth")]
        for k, e in enumerate(epochs):
            title = f"{stages[k]}: epoch {e}\nmIoU {miou[t][k]:.3f}"
            panels.append((overlay(images[r], preds[k][r], colors=colors), title))
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    handles = [Patch(color=colors[i] / 255, label=n) for i, n in enumerate(spec.classes)]
    for h in handles:
        h.set_edgecolor("0.5")
    ncol = min(len(handles), 8)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    atomic_savefig(fig, out, dpi=100)
    plt.close(fig)
