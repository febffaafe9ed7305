"""Figures for `vislab embed`: scatter plots that stay readable with 50 classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as pe  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vislab.fileio import atomic_savefig  # noqa: E402


def class_colors(k: int) -> np.ndarray:
    """k distinct colours: tab10 up to 10 classes, else tab20 + tab20b + tab20c (60)."""
    if k <= 10:
        return plt.get_cmap("tab10")(np.arange(k))
    pool = np.concatenate([plt.get_cmap(n)(np.arange(20)) for n in ("tab20", "tab20b", "tab20c")])
    return pool[np.arange(k) % len(pool)]


def scatter(ax, xy: np.ndarray, labels: np.ndarray, names: list[str] | None = None) -> None:
    """Points coloured by class, and each class's name (else its id) written at its median
    point."""
    classes = np.unique(labels)
    colors = class_colors(int(labels.max()) + 1)
    ax.scatter(xy[:, 0], xy[:, 1], c=colors[labels], s=4, alpha=0.6, linewidths=0)
    for c in classes:
        mx, my = np.median(xy[labels == c], axis=0)
        ax.text(
            mx,
            my,
            names[c] if names and c < len(names) else str(c),
            fontsize=7,
            ha="center",
            va="center",
            color=colors[c] * 0.6,
            path_effects=[pe.withStroke(linewidth=2, foreground="white")],
        )
    # frame the bulk of the points: a few outliers would otherwise squeeze it into a corner
    lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    pad = (hi - lo) * 0.05
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_xticks([])
    ax.set_yticks([])


def plot_pca(xy: np.ndarray, labels: np.ndarray, result: dict[str, Any], path: Path) -> None:
    p = result["pca"]
    fig, ax = plt.subplots(figsize=(7, 6.5))
    scatter(ax, xy, labels, result.get("classes"))
    ev = p["explained_variance"]
    ax.set_xlabel(f"PC 1 ({ev[0]:.1%} of the variance)")
    ax.set_ylabel(f"PC 2 ({ev[1]:.1%} of the variance)")
    ax.set_title(
        f"PCA of {result['model']}'s second-to-last layer ({result['feature_dim']}-d), "
        f"epoch {p['epoch']}\n{result['n']} images; 10-NN accuracy in 2-D {p['knn_acc_2d']:.3f}, "
        f"silhouette {p['silhouette_2d']:.3f}",
        fontsize=10,
    )
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def plot_tsne(panels: list[np.ndarray], labels: np.ndarray, result: dict[str, Any], path: Path):
    n = len(panels)
    stages = {1: ["final"], 2: ["early", "final"], 3: ["early", "middle", "final"]}[n]
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 6.3))
    for ax, xy, info, stage in zip(
        np.atleast_1d(axes), panels, result["tsne"], stages, strict=True
    ):
        scatter(ax, xy, labels, result.get("classes"))
        ax.set_title(
            f"{stage}: epoch {info['epoch']}\n10-NN accuracy in 2-D {info['knn_acc_2d']:.3f}, "
            f"silhouette {info['silhouette_2d']:.3f}",
            fontsize=11,
        )
    fig.suptitle(
        f"t-SNE of {result['model']}'s second-to-last layer on {result['n']} images "
        "(same perplexity, seed and PCA initialisation in every panel)",
        fontsize=12,
    )
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)
