"""The report's figures drawn from run folders: learning curves, scores against minutes, and
scores per class over training."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vislab.fileio import atomic_savefig  # noqa: E402

if TYPE_CHECKING:
    from vislab.data.spec import DatasetSpec


def plot_curves(
    rows: list[dict[str, str]], curves: tuple[tuple[str, str], ...], title: str, path: Path
) -> None:
    """Loss (left) and the task's scores (right; (metrics.csv column, label)) per epoch."""
    epochs = [int(r["epoch"]) for r in rows]

    def series(key: str) -> list[float] | None:
        if not rows or key not in rows[0]:
            return None
        return [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        if (v := series(key)) is not None:
            a.plot(epochs, v, label=label)
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy")
    a.legend()
    for key, label in curves:
        if (v := series(key)) is not None:
            b.plot(epochs, v, label=label)
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def plot_budget(
    runs: list[tuple[str, list[float], list[float]]],
    metric: str,
    path: Path,
    points: list[tuple[str, float, float]] = (),
) -> None:
    """Validation score against training minutes, one line per run: (label, minutes at the end
    of each epoch, score at that epoch), and a star per point (label, minutes, score): an
    ensemble at its members' minutes. What a budget of minutes buys with each recipe."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for label, minutes, scores in runs:
        ax.plot(minutes, scores, marker="o", markersize=3, label=label)
    for label, minutes, score in points:
        ax.plot([minutes], [score], marker="*", markersize=12, linestyle="none", label=label)
    ax.set_xlabel("training minutes (validation included)")
    ax.set_ylabel(f"val {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def plot_per_class(
    epochs: list[int],
    table: dict[str, list[float]],
    metric: str,
    title: str,
    path: Path,
    colors: dict[str, tuple[float, float, float]] | None = None,
) -> None:
    """A score per class at each epoch: one line per class for a few classes (in its colour
    when given, outlined so that a white class shows), else a heat map of the classes (sorted
    by their last score) against the epochs."""
    import matplotlib.patheffects as pe

    names = sorted(table, key=lambda c: table[c][-1])
    if len(names) <= 10:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        outline = [pe.Stroke(linewidth=2.6, foreground="0.35"), pe.Normal()] if colors else None
        for name in reversed(names):
            ax.plot(
                epochs,
                table[name],
                marker="o",
                markersize=3,
                label=name,
                color=colors[name] if colors else None,
                path_effects=outline,
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"val {metric}")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    else:
        grid = np.array([table[c] for c in names])
        fig, ax = plt.subplots(figsize=(2.2 + 0.9 * len(epochs), 0.16 * len(names) + 1.2))
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(epochs)), [f"epoch {e}" for e in epochs])
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_ylabel("class (sorted by its last score)")
        fig.colorbar(im, ax=ax, label=f"val {metric}")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def plot_balance(
    classes: list[str],
    shares: dict[str, list[float]],
    final: dict[str, float] | None,
    metric: str,
    path: Path,
) -> None:
    """Each class's share of the train and validation sets (bars), and the run's last score for
    the class (points, right axis) when known."""
    x = np.arange(len(classes))
    width = 0.8 / len(shares)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(classes) + 3), 4.0))
    for i, (name, values) in enumerate(shares.items()):
        ax.bar(x + (i - (len(shares) - 1) / 2) * width, values, width, label=f"{name} share")
    ax.set_ylabel("share of the set")
    ax.set_xticks(x, classes, rotation=90 if len(classes) > 12 else 0, fontsize=7)
    handles, labels = ax.get_legend_handles_labels()
    if final:
        right = ax.twinx()
        right.plot(x, [final.get(c, np.nan) for c in classes], "k.", label=f"last val {metric}")
        right.set_ylim(0, 1)
        right.set_ylabel(f"val {metric}")
        h, lab = right.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    # below the axes: bars and points fill the whole plot
    ax.legend(handles, labels, fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


IGNORED = (224, 224, 192)  # drawing colour of ignored pixels (Pascal VOC's), no class's


def _tile_panels(
    sat: Path, truth_file: Path, pred_file: Path, spec: DatasetSpec
) -> tuple[list[np.ndarray], float, bool]:
    """(image, truth, prediction, error map) of a tile in the spec's colours, the share of
    wrong pixels, and whether the truth ignores any. The error map shows wrong pixels in the
    colour of their true class, right and ignored ones as the image darkened."""
    from vislab.data.images import read_rgb

    truth, _ = spec.read_mask(truth_file)
    pred, _ = spec.read_mask(pred_file, size=truth.shape)
    ignored = truth == spec.ignore_index
    wrong = (truth != pred) & ~ignored
    image = read_rgb(sat)
    truth_rgb = spec.to_rgb(truth)
    truth_rgb[ignored] = IGNORED
    errors = np.where(wrong[..., None], truth_rgb, image // 4)
    share = float(wrong.sum() / max(1, (~ignored).sum()))
    return [image, truth_rgb, spec.to_rgb(pred), errors], share, bool(ignored.any())


def plot_worst_tiles(
    rows: list[tuple[str, float, tuple[Path, Path], Path]],
    spec: DatasetSpec,
    path: Path,
    size: int = 256,
) -> None:
    """One row per tile, (id, its mIoU, (image, truth mask), predicted mask): the image, the
    truth, the prediction, and the error map, each downscaled to size, in the colours of the
    data set spec, with the spec's classes as the legend."""
    from PIL import Image

    def small(rgb: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(rgb).resize((size, size), Image.NEAREST))

    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.6 * len(rows) + 0.6), squeeze=False)
    any_ignored = False
    for row, (tile, miou, (sat, truth_file), pred_file) in zip(axes, rows, strict=True):
        panels, share, ignored = _tile_panels(sat, truth_file, pred_file, spec)
        any_ignored |= ignored
        titles = [
            f"{tile}: mIoU {miou:.3f}",
            "truth",
            "prediction",
            f"errors: {share:.1%} of pixels",
        ]
        for ax, panel, title in zip(row, panels, titles, strict=True):
            ax.imshow(small(panel))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    colours = [tuple(c) for c in spec.palette] + ([IGNORED] if any_ignored else [])
    names = list(spec.classes) + ([f"ignored ({spec.ignore_index})"] if any_ignored else [])
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.divide(c, 255), ec="0.5") for c in colours]
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 8), fontsize=8)
    fig.tight_layout(rect=(0, 0.5 / (2.6 * len(rows) + 0.6), 1, 1))
    atomic_savefig(fig, path, dpi=90)
    plt.close(fig)


def plot_confused_examples(
    pairs: list[tuple[dict, list[Path]]], path: Path, scale: int = 3
) -> None:
    """One row per confused pair ({true, pred, count}, its example image files): the images,
    enlarged scale times without smoothing, beside the pair's name and count."""
    from vislab.data.images import read_rgb

    width = max([len(files) for _, files in pairs] + [1])
    fig, axes = plt.subplots(
        max(1, len(pairs)),
        width,
        figsize=(1.3 * width + 1.6, 1.45 * max(1, len(pairs))),
        squeeze=False,
    )
    for row, (pair, files) in zip(axes, pairs, strict=False):
        for i, ax in enumerate(row):
            ax.axis("off")
            if i < len(files):
                image = read_rgb(files[i])
                ax.imshow(np.kron(image, np.ones((scale, scale, 1), dtype=image.dtype)))
                ax.set_title(files[i].name, fontsize=6)
        row[0].text(
            -0.15,
            0.5,
            f"true {pair['true']}\npredicted {pair['pred']}\n{pair['count']} in all",
            transform=row[0].transAxes,
            ha="right",
            va="center",
            fontsize=8,
        )
    if not pairs:
        axes[0][0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.tight_layout(rect=(0.14, 0, 1, 1))
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def plot_class_accuracy(accuracy: dict[str, float], overall: float, path: Path) -> None:
    """Each class's validation accuracy as a bar, sorted from the worst, with the overall
    accuracy as a line."""
    names = sorted(accuracy, key=lambda c: (accuracy[c], c))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.2 * len(names) + 2), 3.6))
    ax.bar(range(len(names)), [accuracy[c] for c in names], color="tab:blue")
    ax.axhline(overall, color="k", lw=1, ls="--", label=f"overall {overall:.3f}")
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 12 else 0, fontsize=7)
    ax.set_xlabel("class (sorted by accuracy)")
    ax.set_ylabel("val accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)
