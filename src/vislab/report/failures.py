"""Where a run fails, from its predictions of the validation set (RUN/val_pred.csv or
RUN/val_masks, as `vislab reproduce` writes them) against the truth its config names.

Segmentation: the tiles ranked by their own mIoU, the worst shown as image, truth, prediction
and error map in the spec's colours, and the class pairs most confused, in pixels.
Classification (flat {label}_{id} folders, a labels CSV, or an ImageFolder tree): the class
pairs most confused, each with validation images of the mistake, and the accuracy of every
class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vislab.errors import VislabError
from vislab.report.run import Run, Section

WORST_TILES = 4
PAIRS = 5
EXAMPLES = 6  # images shown per confused pair


def failures(run: Run, figures: Path) -> Section:
    """The failure facts, figures and sentence of a run, or what is missing."""
    folder = run.folder
    pred = folder.val_masks if run.task == "segmentation" else folder.val_pred
    out = Section()
    try:
        data = folder.config().data.located()
    except VislabError as e:  # the data root is gone: no validation set to compare with
        out.missing.append(f"where it fails ({e})")
        return out
    val = data.resolve(data.val)
    if not pred.exists():
        out.missing.append(
            f"where it fails (the run folder holds no {pred.name}; {_how(run, val, pred)})"
        )
        return out
    if val is None or not val.exists():
        out.missing.append(f"where it fails (the validation data {val} is not here)")
        return out
    try:
        if run.task == "segmentation":
            found = _tiles(run, val, pred, figures)
        else:
            found = _images(run, data.resolve(data.val_labels), val, pred, figures)
    except VislabError as e:
        out.missing.append(f"where it fails ({e})")
        return out
    found.text["failures"] = said(found.facts["failures"])
    return found


def _how(run: Run, val: Path | None, pred: Path) -> str:
    """How to write the predictions the section reads: one `vislab predict` of the validation
    folder, or, for a class-folder tree (predict reads flat folders), one per class folder."""
    from vislab.data.images import is_image_folder_tree

    best = run.folder.best
    if run.task == "classification" and val and val.is_dir() and is_image_folder_tree(val):
        return (
            f"{val} is a tree of class folders and `vislab predict` reads flat folders: run "
            f"`vislab predict --ckpt {best} --images {val}/CLASS --out CLASS.csv` for each "
            f"class folder and write their rows into {pred} as CLASS/FILE,label (under a "
            "filename,label header)"
        )
    return f"`vislab predict --ckpt {best} --images {val} --out {pred}` writes it"


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


def _class(name: str) -> str:
    return f"class {name}" if name.isdigit() else name


def _pairs_said(pairs: list[dict[str, Any]], unit: str) -> str:
    return "; ".join(
        f"{_class(p['true'])} taken for {_class(p['pred'])}, {p['count']:,} "
        f"{unit if p['count'] != 1 else unit[:-1]} ({p['share']:.1%} of {_class(p['true'])})"
        for p in pairs
    )


def _worst_said(fl: dict[str, Any]) -> str:
    worst = ", ".join(
        f"{w['tile']} ({w['miou']:.3f}"
        + (
            f"; mostly {w['pairs'][0]['true']} taken for {w['pairs'][0]['pred']}"
            if w["pairs"]
            else ""
        )
        + ")"
        for w in fl["worst"]
    )
    return (
        f" Of the {fl['n']} tiles, each scored alone (the mean IoU of the classes in its "
        f"truth or prediction; median {fl['median']:.3f}), the worst are {worst}."
    )


def _accuracy_said(fl: dict[str, Any]) -> str:
    acc = fl["class_accuracy"]
    order = sorted(acc, key=lambda c: (acc[c], c))
    low = ", ".join(f"{_class(c)} {acc[c]:.2f}" for c in order[:3])
    high = ", ".join(f"{_class(c)} {acc[c]:.2f}" for c in order[::-1][:3])
    return (
        f" Per-class accuracy spans {acc[order[0]]:.2f} to {acc[order[-1]]:.2f} around the "
        f"overall {fl['accuracy']:.4f}: lowest {low}; highest {high}."
    )


def said(fl: dict[str, Any]) -> str:
    """The mistakes that cost most: the confused pairs, and the worst tiles or classes."""
    unit = fl["unit"]
    if not fl["pairs"]:
        return f"No mistakes on the {fl['n']:,} validation {unit}."
    text = (
        f"The most frequent mistakes over the validation {unit}: {_pairs_said(fl['pairs'], unit)}."
    )
    return text + (_worst_said(fl) if "worst" in fl else _accuracy_said(fl))


# -- segmentation ---------------------------------------------------------------------------
def _mask_file(folder: Path, tile: str) -> Path:
    for name in (f"{tile}.png", f"{tile}_mask.png"):
        if (folder / name).is_file():
            return folder / name
    raise VislabError(f"no predicted mask of tile {tile} in {folder}")


def _tiles(run: Run, val: Path, pred: Path, figures: Path) -> Section:
    """Each validation tile scored alone (its truth and predicted mask read with the run's
    spec, ignored pixels left out), the worst drawn, and the pixels most confused."""
    from vislab.data.tiles import find_pairs
    from vislab.metrics.mask_scores import mask_confusions
    from vislab.metrics.miou import scores
    from vislab.report.figures import plot_worst_tiles

    per_tile = mask_confusions(val, pred, run.spec)
    ranked = sorted(
        ((tile, scores(cm, run.spec)["miou_present"], cm) for tile, cm in per_tile.items()),
        key=lambda t: (t[1], t[0]),
    )
    worst = ranked[:WORST_TILES]
    tiles = find_pairs(val)
    path = figures / f"{run.name}_worst_tiles.png"
    shown = [(tile, miou, tiles[tile], _mask_file(pred, tile)) for tile, miou, _ in worst]
    plot_worst_tiles(shown, run.spec, path)
    names = run.spec.classes
    facts = {
        "unit": "pixels",
        "n": len(ranked),
        "median": float(np.median([m for _, m, _ in ranked])),
        "worst": [
            {"tile": tile, "miou": miou, "pairs": confused_pairs(cm, names, 1)}
            for tile, miou, cm in worst
        ],
        "pairs": confused_pairs(sum(per_tile.values()), names),
    }
    return Section(facts={"failures": facts}, figures={"worst_tiles": path})


# -- classification -------------------------------------------------------------------------
def _image_files(val: Path) -> dict[str, Path]:
    """The validation images by the names a prediction CSV may give them: class/file in an
    ImageFolder tree, and the file name alone."""
    from vislab.data.images import IMAGE_SUFFIXES

    files: dict[str, Path] = {}
    for p in sorted(val.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            files[p.relative_to(val).as_posix()] = p
            files.setdefault(p.name, p)
    return files


def _images(run: Run, labels: Path | None, val: Path, pred: Path, figures: Path) -> Section:
    """The class pairs most confused, with images of each mistake, and each class's
    accuracy; labels are the run's class names (a flat folder's are its label numbers)."""
    from vislab.metrics.evaluate import label_table, score
    from vislab.report.figures import plot_class_accuracy, plot_confused_examples

    guess, truth, classes = label_table(pred, labels or val, run.classes or None)
    result = score(guess, truth, pred, classes)
    names = list(result["per_class_accuracy"])  # the class names in index order
    pairs = confused_pairs(np.asarray(result["confusion"]), names)
    files = _image_files(val)
    for pair in pairs:
        t, p = names.index(pair["true"]), names.index(pair["pred"])
        mistakes = [f for f in sorted(truth) if truth[f] == t and guess[f] == p]
        pair["examples"] = [f for f in mistakes if f in files][:EXAMPLES]
    accuracy = {c: a for c, a in result["per_class_accuracy"].items() if a is not None}
    out = Section()
    out.figures["confused"] = figures / f"{run.name}_confused.png"
    examples = [(p, [files[f] for f in p["examples"]]) for p in pairs]
    plot_confused_examples(examples, out.figures["confused"])
    out.figures["class_accuracy"] = figures / f"{run.name}_class_accuracy.png"
    plot_class_accuracy(accuracy, result["accuracy"], out.figures["class_accuracy"])
    out.facts["failures"] = {
        "unit": "images",
        "n": result["n"],
        "accuracy": result["accuracy"],
        "pairs": pairs,
        "class_accuracy": accuracy,
    }
    return out
