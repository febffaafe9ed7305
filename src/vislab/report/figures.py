"""The report's figures drawn from run folders: learning curves, scores against minutes, and
scores per class over training."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vislab.fileio import atomic_savefig  # noqa: E402


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


def plot_budget(runs: list[tuple[str, list[float], list[float]]], metric: str, path: Path) -> None:
    """Validation score against training minutes, one line per run: (label, minutes at the end
    of each epoch, score at that epoch). What a budget of minutes buys with each recipe."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for label, minutes, scores in runs:
        ax.plot(minutes, scores, marker="o", markersize=3, label=label)
    ax.set_xlabel("training minutes (validation included)")
    ax.set_ylabel(f"val {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def plot_per_class(
    epochs: list[int], table: dict[str, list[float]], metric: str, title: str, path: Path
) -> None:
    """A score per class at each epoch: one line per class for a few classes, else a heat map
    of the classes (sorted by their last score) against the epochs."""
    import numpy as np

    names = sorted(table, key=lambda c: table[c][-1])
    if len(names) <= 10:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        for name in reversed(names):
            ax.plot(epochs, table[name], marker="o", markersize=3, label=name)
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
    import numpy as np

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
