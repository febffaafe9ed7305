"""Where a run fails, from its predictions of the validation set (RUN/val_pred.csv or
RUN/val_masks, as `vislab reproduce` writes them) against the truth its config names.

Segmentation: the tiles ranked by their own mIoU, the worst shown as image, truth, prediction
and error map, and the class pairs most confused, in pixels. Classification: the class pairs
most confused, each with validation images of the mistake, and the accuracy of every class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vislab.errors import VislabError
from vislab.report.build import Run
from vislab.run_folder import RunFolder

WORST_TILES = 4
PAIRS = 5
EXAMPLES = 6  # images shown per confused pair


def failures(run: Run, figures: Path) -> None:
    """Fill run.facts["failures"] and its figures, or name what is missing."""
    folder = RunFolder(run.path)
    cfg = folder.config()
    val = cfg.data.resolve(cfg.data.val)
    pred = folder.val_masks if run.task == "segmentation" else folder.val_pred
    if not pred.exists():
        run.missing.append(
            f"where it fails (the run folder holds no {pred.name}; `vislab predict --ckpt "
            f"{folder.best} --images {val} --out {pred}` writes it)"
        )
        return
    if val is None or not val.exists():
        run.missing.append(f"where it fails (the validation data {val} is not here)")
        return
    try:
        if run.task == "segmentation":
            _segmentation(run, val, pred, figures)
        else:
            _classification(run, cfg.data.resolve(cfg.data.val_labels) or val, val, pred, figures)
    except VislabError as e:
        run.missing.append(f"where it fails ({e})")


def confused_pairs(cm: np.ndarray, names: list[str], n: int = PAIRS) -> list[dict[str, Any]]:
    """The n largest off-diagonal cells of a confusion (row = truth), as {true, pred, count,
    share of the true class}."""
    cm = np.asarray(cm, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None, kind="stable")[::-1][:n]
    pairs = []
    for flat in order:
        t, p = divmod(int(flat), cm.shape[1])
        if off[t, p] == 0:
            break
        share = float(cm[t, p] / cm[t].sum())
        pairs.append({"true": names[t], "pred": names[p], "count": int(cm[t, p]), "share": share})
    return pairs


def _segmentation(run: Run, val: Path, pred: Path, figures: Path) -> None:
    from vislab.course.landcover import CLASSES
    from vislab.data.tiles import find_pairs
    from vislab.metrics.evaluate import mask_confusions
    from vislab.metrics.miou import scores
    from vislab.report.figures import plot_worst_tiles

    per_tile = mask_confusions(val, pred)
    ranked = sorted(
        ((tile, scores(cm)["miou_present"], cm) for tile, cm in per_tile.items()),
        key=lambda t: (t[1], t[0]),
    )
    worst = ranked[:WORST_TILES]
    total = sum(per_tile.values())
    tiles = find_pairs(val)
    path = figures / f"{run.name}_worst_tiles.png"
    plot_worst_tiles(
        [(tile, miou, tiles[tile], _mask_file(pred, tile)) for tile, miou, _ in worst], path
    )
    run.figures["worst_tiles"] = path
    run.facts["failures"] = {
        "unit": "pixels",
        "n": len(ranked),
        "median": float(np.median([m for _, m, _ in ranked])),
        "worst": [
            {"tile": tile, "miou": miou, "pairs": confused_pairs(cm, CLASSES, 1)}
            for tile, miou, cm in worst
        ],
        "pairs": confused_pairs(total, CLASSES),
    }


def _mask_file(folder: Path, tile: str) -> Path:
    for name in (f"{tile}.png", f"{tile}_mask.png"):
        if (folder / name).is_file():
            return folder / name
    raise VislabError(f"no predicted mask of tile {tile} in {folder}")


def _classification(run: Run, truth_at: Path, val: Path, pred: Path, figures: Path) -> None:
    from vislab.data.images import list_images, read_label_csv
    from vislab.metrics.evaluate import check_pairing, read_truth, score
    from vislab.report.classes import class_names
    from vislab.report.figures import plot_class_accuracy, plot_confused_examples

    truth, guess = read_truth(truth_at), read_label_csv(pred)
    check_pairing(guess, truth, pred)
    result = score(guess, truth, pred)
    cm = np.asarray(result["confusion"])
    names = class_names(run, len(cm))
    pairs = confused_pairs(cm, names)
    files = {p.name: p for p in list_images(val)}
    index = {name: i for i, name in enumerate(names)}
    for pair in pairs:
        t, p = index[pair["true"]], index[pair["pred"]]
        pair["examples"] = [
            f for f in sorted(truth) if truth[f] == t and guess[f] == p and f in files
        ][:EXAMPLES]
    accuracy = {names[int(c)]: a for c, a in result["per_class_accuracy"].items() if a is not None}
    path = figures / f"{run.name}_confused.png"
    plot_confused_examples([(p, [files[f] for f in p["examples"]]) for p in pairs], path)
    run.figures["confused"] = path
    path = figures / f"{run.name}_class_accuracy.png"
    plot_class_accuracy(accuracy, result["accuracy"], path)
    run.figures["class_accuracy"] = path
    run.facts["failures"] = {
        "unit": "images",
        "n": result["n"],
        "accuracy": result["accuracy"],
        "pairs": pairs,
        "class_accuracy": accuracy,
    }
