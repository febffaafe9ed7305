"""`vislab evaluate`: the data set spec of the command (from a model file or a recipe), a
prediction CSV against class labels, and the files both halves write (masks:
vislab/metrics/mask_scores.py).

No torch here: scoring should start in well under a second. Only ``--ckpt CKPT`` of a
checkpoint loads torch, to read its metadata (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vislab.data.spec import DatasetSpec, builtin_spec
from vislab.errors import VislabError
from vislab.fileio import atomic_savefig, atomic_write_bytes, atomic_write_csv


# -- the data set spec of a command ------------------------------------------------------------
def recipe_spec(path: Path) -> DatasetSpec:
    """The spec a recipe declares (data.spec, or data.classes with data.palette,
    data.ignore_index, data.mask_format); the course's land-cover set when it declares none."""
    from vislab.config import load_config
    from vislab.data.tiles import resolve_spec

    cfg = load_config(path)
    if cfg.task != "segmentation":
        raise VislabError(f"--config {path} is a {cfg.task} recipe; masks need a segmentation one")
    d = cfg.data
    if d.spec is None and d.classes is None and d.palette is None:
        return builtin_spec("landcover")
    return resolve_spec(Path(path), d.spec, d.classes, d.palette, d.ignore_index, d.mask_format)


def command_spec(ckpt: Path | None = None, config: Path | None = None) -> DatasetSpec:
    """The spec of `vislab evaluate` / `overlay`: a segmenter's (--ckpt: a checkpoint,
    .safetensors or .onnx), a recipe's (--config), else the course's land-cover set."""
    if ckpt is not None and config is not None:
        raise VislabError("give --ckpt or --config, not both: each names the data set's classes")
    if config is not None:
        return recipe_spec(config)
    if ckpt is None:
        return builtin_spec("landcover")
    from vislab.infer.meta import read_meta

    meta = read_meta(ckpt)
    if meta.task != "segmentation":
        raise VislabError(f"--ckpt {ckpt} is a {meta.task} model; masks need a segmenter's")
    return meta.spec()


def command_classes(ckpt: Path | None = None, config: Path | None = None) -> list[str] | None:
    """Class names in index order for classification: the model's (--ckpt) or the recipe's
    data.classes (--config); None when neither names them."""
    if ckpt is not None and config is not None:
        raise VislabError("give --ckpt or --config, not both: each names the classes")
    if config is not None:
        from vislab.config import load_config

        return load_config(config).data.classes
    if ckpt is None:
        return None
    from vislab.infer.meta import read_meta

    meta = read_meta(ckpt)
    if meta.task != "classification":
        raise VislabError(f"--ckpt {ckpt} is a {meta.task} model; a label CSV needs a classifier")
    return list(meta.classes)


# -- classification ----------------------------------------------------------------------------
def names_of(items: list[str], n: int = 5) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def read_truth(gt: Path) -> dict[str, int]:
    """Integer ground truth from a filename,label CSV or a flat folder of {label}_{id} images."""
    from vislab.data.images import label_from_name, list_images, read_label_csv

    gt = Path(gt)
    if gt.is_dir():
        return {p.name: label_from_name(p) for p in list_images(gt)}
    return read_label_csv(gt)


def truth_labels(gt: Path) -> tuple[dict[str, str], list[str] | None]:
    """({file: label text}, the tree's classes) of a CSV, a flat {label}_{id} folder (classes
    None) or an ImageFolder tree (files "class/name", classes its sorted folders)."""
    from vislab.data.images import IMAGE_SUFFIXES, is_image_folder_tree, read_name_csv, visible

    gt = Path(gt)
    if not gt.is_dir():
        labels = read_name_csv(gt)
        if not labels:
            raise VislabError(f"{gt}: no rows to score (the 'filename,label' header alone)")
        return labels, None
    if not is_image_folder_tree(gt):
        return {k: str(v) for k, v in read_truth(gt).items()}, None
    classes = [p.name for p in visible(gt) if p.is_dir()]
    labels = {
        f"{c}/{p.name}": c
        for c in classes
        for p in visible(gt / c)
        if p.suffix.lower() in IMAGE_SUFFIXES
    }
    if not labels:
        raise VislabError(f"no images in the class folders of {gt}")
    return labels, classes


def _by_file_name(truth: dict[str, str], gt: Path) -> dict[str, str]:
    """A tree's labels keyed by base name, for a prediction CSV that names files alone."""
    out: dict[str, str] = {}
    for key, label in truth.items():
        name = key.rsplit("/", 1)[-1]
        if name in out:
            raise VislabError(
                f"{gt}: {name} is in two class folders; name the prediction CSV's files "
                "class/name to tell them apart"
            )
        out[name] = label
    return out


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _as_indices(labels: dict[str, str], classes: list[str], where: Path, verb: str):
    index = {c: i for i, c in enumerate(classes)}
    for name, label in labels.items():
        if label not in index:
            raise VislabError(
                f"{where}: {name} is {verb} {label!r}, not one of the {len(classes)} classes "
                f"({names_of(classes)}); --ckpt or --config names the model's classes"
            )
    return {name: index[label] for name, label in labels.items()}


def label_table(
    pred_csv: Path, gt: Path, classes: list[str] | None = None
) -> tuple[dict[str, int], dict[str, int], list[str] | None]:
    """(predicted, true) class indices by file, paired, and the class names in index order.
    Integer labels without named classes stay integers (classes None, as the course's CSVs);
    otherwise labels are names: of `classes` when given, else of the tree's folders, else the
    sorted names of the truth."""
    from vislab.data.images import read_label_csv, read_name_csv

    pred_csv = Path(pred_csv)
    truth, tree = truth_labels(gt)
    if classes is None and tree is None and all(_is_int(v) for v in truth.values()):
        pred = read_label_csv(pred_csv)
        ints = {k: int(v) for k, v in truth.items()}
        check_pairing(pred, ints, pred_csv)
        return pred, ints, None
    guess = read_name_csv(pred_csv)
    if tree is not None and not any("/" in name for name in guess):
        truth = _by_file_name(truth, Path(gt))
    check_pairing(guess, truth, pred_csv)
    classes = list(classes or tree or sorted(set(truth.values())))
    return (
        _as_indices(guess, classes, pred_csv, "predicted as"),
        _as_indices(truth, classes, Path(gt), "labelled"),
        classes,
    )


def check_pairing(pred: dict[str, Any], truth: dict[str, Any], pred_path: Path) -> None:
    missing = sorted(set(truth) - set(pred))
    extra = sorted(set(pred) - set(truth))
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} file(s) of the ground truth are missing: {names_of(missing)}"
        )
    if extra:
        problems.append(f"{len(extra)} file(s) are not in the ground truth: {names_of(extra)}")
    if problems:
        raise VislabError(f"{pred_path}: " + "; ".join(problems))


def score(
    pred: dict[str, int],
    truth: dict[str, int],
    pred_path: Path,
    classes: list[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class accuracy (by class name) and confusion over `classes`, or, for
    integer labels, the classes 0..K-1 of the truth; a predicted label outside them is an error
    naming its file (not a K-times-larger matrix)."""
    names = sorted(truth)
    t = np.asarray([truth[n] for n in names], dtype=np.int64)
    p = np.asarray([pred[n] for n in names], dtype=np.int64)
    if (t < 0).any():
        raise VislabError("ground-truth labels must be non-negative integers")
    k = len(classes) if classes is not None else int(t.max()) + 1
    bad = np.flatnonzero((p < 0) | (p >= k))
    if bad.size:
        i = int(bad[0])
        raise VislabError(
            f"{pred_path}: {names[i]} is predicted as {int(p[i])}, not a class of the ground "
            f"truth (0..{k - 1}); {bad.size} prediction(s) out of range"
        )
    from vislab.metrics.miou import confusion

    cm = confusion(t, p, k)
    support = cm.sum(1)
    labels = classes if classes is not None else [str(c) for c in range(k)]
    per_class = {
        labels[c]: (float(cm[c, c] / support[c]) if support[c] else None) for c in range(k)
    }
    return {
        "accuracy": float(np.trace(cm) / cm.sum()),
        "n": int(cm.sum()),
        "per_class_accuracy": per_class,
        "confusion": cm.tolist(),
    }


def plot_confusion(cm: np.ndarray, path: Path, title: str, names: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(cm)
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = min(14, 4 + k * 0.18)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    step = 1 if k <= 20 else 5
    ticks = list(range(0, k, step))
    ax.set_xticks(ticks, [names[t] for t in ticks] if names else ticks, rotation=45 if names else 0)
    ax.set_yticks(ticks, [names[t] for t in ticks] if names else ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def check_out_folder(out_dir: Path, flag: str = "--out") -> None:
    """An output folder (flag names it) must be a folder, or one to make: one line when it,
    or a folder above it, is a file (before anything is written)."""
    from vislab.fileio import special_file

    for p in (out_dir, *out_dir.parents):
        if p.is_dir():
            return
        if p.exists() or p.is_symlink():
            what = special_file(p) or ("a file" if p.exists() else "a link to nothing")
            raise VislabError(f"{flag} {out_dir} must be a folder; {p} is {what}")


def write_json(result: dict[str, Any], paths: list[Path]) -> None:
    """The metrics as JSON (a nan as null) to each of paths."""
    finite = {k: (None if isinstance(v, float) and v != v else v) for k, v in result.items()}
    text = json.dumps(finite, indent=1).encode()
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(path), text)


def write_confusion(cm: np.ndarray, names: list[str], out_dir: Path, title: str) -> None:
    rows = [[name, *row] for name, row in zip(names, cm.tolist(), strict=True)]
    atomic_write_csv(out_dir / "confusion.csv", [["true\\pred", *names], *rows], "\r\n")
    plot_confusion(cm, out_dir / "confusion.png", title, names)


def evaluate_classification(
    pred_csv: Path,
    gt: Path,
    out_dir: Path | None,
    json_path: Path | None = None,
    classes: list[str] | None = None,
) -> dict[str, Any]:
    """Score pred_csv against gt (a CSV, a flat labeled folder or an ImageFolder tree) over
    `classes` (e.g. a checkpoint's); write metrics.json, confusion.csv and confusion.png to
    out_dir (default <pred>_eval), and the metrics to json_path when given."""
    pred_csv = Path(pred_csv)
    flag = "--out" if out_dir is not None else "the scores' folder"
    if out_dir is None:
        out_dir = pred_csv.with_name(pred_csv.stem + "_eval")
    out_dir = Path(out_dir)
    check_out_folder(out_dir, flag)
    pred, truth, classes = label_table(pred_csv, gt, classes)
    result = score(pred, truth, pred_csv, classes)
    result["prediction"], result["ground_truth"] = str(pred_csv), str(gt)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, [out_dir / "metrics.json", *([json_path] if json_path else [])])
    cm = np.asarray(result["confusion"])
    names = list(result["per_class_accuracy"])
    # integer classes keep their plain numbered axes; names are drawn on them
    title = f"{pred_csv.name}: acc {result['accuracy']:.4f}"
    if classes is None:
        rows = [["true\\pred", *range(len(cm))], *([c, *row] for c, row in enumerate(cm))]
        atomic_write_csv(out_dir / "confusion.csv", rows, newline="\r\n")
        plot_confusion(cm, out_dir / "confusion.png", title)
    else:
        write_confusion(cm, names, out_dir, title)
    result["out_dir"] = str(out_dir)
    return result


def format_report(result: dict[str, Any]) -> str:
    lines = [f"accuracy: {result['accuracy']:.4f} ({result['n']} images)"]
    per = [(c, a) for c, a in result["per_class_accuracy"].items() if a is not None]
    width = max([3, *(len(c) for c, _ in per)])
    step = max(1, 100 // (width + 7))  # as many as fit 100 columns: 10 numbered ones
    lines.append("per-class accuracy:")
    for i in range(0, len(per), step):
        lines.append("  " + "  ".join(f"{c:>{width}}:{a:.2f}" for c, a in per[i : i + step]))
    return "\n".join(lines)
