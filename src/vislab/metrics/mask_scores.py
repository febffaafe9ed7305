"""`vislab evaluate` of masks: a folder of predicted masks against the ground-truth masks,
paired by stem and scored over a data set spec's classes (the course's land-cover set, to the
last bit of its script, unless a model file or a recipe names another).

No torch here; Pillow only for the masks of a spec other than the course's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vislab.data.spec import MASK_SUFFIXES, DatasetSpec, builtin_spec
from vislab.errors import VislabError
from vislab.fileio import special_file
from vislab.metrics.evaluate import check_out_folder, names_of, write_confusion, write_json


def _mask_id(path: Path) -> str:
    stem = path.stem
    return stem[: -len("_mask")] if stem.lower().endswith("_mask") else stem


def mask_files(folder: Path) -> list[Path]:
    """The masks of a folder, sorted: its masks/ sub-folder's when it has one (the images/ +
    masks/ layout); the ``*_mask`` files (.png, .tif, .tiff) when there are any (the course's
    folders of xxxx_sat.jpg + xxxx_mask.png); else every .png / .tif / .tiff. A FIFO or a
    device of a mask's name is refused, named (reading one could block forever)."""
    folder = Path(folder)
    if (folder / "masks").is_dir():
        folder = folder / "masks"
    named = sorted(  # hidden files (macOS's ._ copies) are no one's masks
        p
        for p in folder.iterdir()
        if p.suffix.lower() in MASK_SUFFIXES and not p.name.startswith(".")
    )
    for p in named:
        if special_file(p):
            raise VislabError(
                f"{p} is {special_file(p)}, not a mask: vislab reads regular files only (move it "
                "out of the folder)"
            )
    files = [p for p in named if p.is_file()]
    tagged = [p for p in files if p.stem.lower().endswith("_mask")]
    return tagged or files


def pair_masks(gt_dir: Path, pred_dir: Path) -> list[tuple[Path, Path]]:
    """(truth, prediction) files paired by stem: ``xxxx.png`` with ``xxxx.png`` or
    ``xxxx_mask.png`` (.tif too); refuse what cannot pair, naming the files."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    if not gt_dir.is_dir():
        raise VislabError(
            f"--pred {pred_dir} is a folder of masks, so --gt must be the folder of "
            f"ground-truth masks; {gt_dir} is {special_file(gt_dir) or 'not a folder'}"
        )
    gts, preds = mask_files(gt_dir), mask_files(pred_dir)
    if not gts:
        raise VislabError(f"no masks ({', '.join(MASK_SUFFIXES)}) in {gt_dir}")
    for files, folder in ((gts, gt_dir), (preds, pred_dir)):
        seen: dict[str, Path] = {}
        for p in files:
            if _mask_id(p) in seen:
                first = seen[_mask_id(p)].name
                raise VislabError(f"{folder}: {first} and {p.name} are both mask {_mask_id(p)}")
            seen[_mask_id(p)] = p
    if len(gts) != len(preds):
        gt_ids, pred_ids = {_mask_id(p) for p in gts}, {_mask_id(p) for p in preds}
        missing, extra = sorted(gt_ids - pred_ids), sorted(pred_ids - gt_ids)
        detail = []
        if missing:
            detail.append(f"no prediction for {names_of(missing)}")
        if extra:
            detail.append(f"no ground truth for {names_of(extra)}")
        raise VislabError(
            f"{pred_dir} has {len(preds)} masks but {gt_dir} has {len(gts)}: " + "; ".join(detail)
        )
    gts.sort(key=_mask_id)
    preds.sort(key=_mask_id)
    for g, p in zip(gts, preds, strict=True):
        if _mask_id(g) != _mask_id(p):
            raise VislabError(f"sorted file lists do not line up: {g.name} pairs with {p.name}")
    return list(zip(gts, preds, strict=True))


def _pair_codes(pair: tuple[Path, Path]) -> np.ndarray:
    """(8, 8) counts of (truth code, predicted code) for one pair of land-cover mask files."""
    from vislab.course.landcover import read_mask_rgb, rgb_to_code

    gt, pred = pair
    truth = rgb_to_code(read_mask_rgb(gt))
    guess = rgb_to_code(read_mask_rgb(pred, size=truth.shape))
    # codes are 0..7, so truth * 8 + guess fits a byte: one bincount, no per-pixel lookup
    return np.bincount((truth * np.uint8(8) + guess).ravel(), minlength=64).reshape(8, 8)


def _codes_of(pairs: list[tuple[Path, Path]]) -> list[np.ndarray]:
    return [_pair_codes(pair) for pair in pairs]


def _over_cores(fn: Callable[[list], list], pairs: list[tuple[Path, Path]]) -> list:
    """fn(pairs), split over the free cores: this process and forked children (the PNG
    decoder holds the GIL, so threads would take turns); one process for a few masks."""
    import os

    from vislab.runtime import forked_map

    workers = min(len(os.sched_getaffinity(0)), len(pairs) // 32)
    if workers < 2:
        return fn(pairs)
    parts = forked_map(fn, [pairs[i::workers] for i in range(workers)])
    out: list = [None] * len(pairs)
    for i, part in enumerate(parts):
        out[i::workers] = part
    return out


def _classes_of(codes: np.ndarray) -> np.ndarray:
    """(7, 7) class counts of (8, 8) code counts (red read as urban, as the course does)."""
    from vislab.course.landcover import CODE_TO_CLASS

    cm = np.zeros((len(CODE_TO_CLASS) - 1, len(CODE_TO_CLASS) - 1), dtype=np.int64)
    np.add.at(cm, (CODE_TO_CLASS[:, None], CODE_TO_CLASS[None, :]), codes)
    return cm


def _landcover_confusions(pairs: list[tuple[Path, Path]]) -> tuple[list[np.ndarray], dict]:
    """Each land-cover pair's (7, 7) confusion through the colour code's fast path, and the
    red pixels of each file."""
    from vislab.course.landcover import RED_CODE

    cms, red = [], {}
    for (gt, pred), codes in zip(pairs, _over_cores(_codes_of, pairs), strict=True):
        cms.append(_classes_of(codes))
        red[f"{gt.parent.name}/{gt.name}"] = int(codes[RED_CODE].sum())
        red[f"{pred.parent.name}/{pred.name}"] = int(codes[:, RED_CODE].sum())
    return cms, red


def _pair_confusion(pair: tuple[Path, Path], spec: DatasetSpec) -> tuple[np.ndarray, int, int]:
    """(K, K) confusion of one pair read through spec (truth pixels of the ignore index left
    out), and the pixels each file's rule read."""
    from vislab.metrics.miou import confusion

    gt, pred = pair
    truth, ruled_t = spec.read_mask(gt)
    guess, ruled_p = spec.read_mask(pred, size=truth.shape)
    unclassed = (guess == spec.ignore_index) & (truth != spec.ignore_index)
    if unclassed.any():
        y, x = (int(v[0]) for v in np.nonzero(unclassed))
        raise VislabError(
            f"{pred}: {int(unclassed.sum())} pixel(s) hold the ignore index "
            f"{spec.ignore_index} where the truth has a class, e.g. (x={x}, y={y}); a "
            "prediction gives every pixel a class"
        )
    return confusion(truth, guess, spec.num_classes, spec.ignore_index), ruled_t, ruled_p


def _spec_confusions(pairs: list[tuple[Path, Path]], spec: DatasetSpec):
    """Each pair's (K, K) confusion through spec, and the pixels its rule read in each file."""
    done = _over_cores(lambda part: [_pair_confusion(p, spec) for p in part], pairs)
    ruled = {}
    for (gt, pred), (_, n_t, n_p) in zip(pairs, done, strict=True):
        ruled[f"{gt.parent.name}/{gt.name}"] = n_t
        ruled[f"{pred.parent.name}/{pred.name}"] = n_p
    return [cm for cm, _, _ in done], ruled


def _is_landcover(spec: DatasetSpec | None) -> bool:
    return spec is None or spec.name == "landcover"


def _confusions(pairs: list[tuple[Path, Path]], spec: DatasetSpec | None):
    if _is_landcover(spec):
        return _landcover_confusions(pairs)
    return _spec_confusions(pairs, spec)


def mask_confusions(
    gt_dir: Path, pred_dir: Path, spec: DatasetSpec | None = None
) -> dict[str, np.ndarray]:
    """Each mask's own (K, K) class confusion (row = truth) over spec's classes (default the
    course's 7), by tile id."""
    pairs = pair_masks(gt_dir, pred_dir)
    cms, _ = _confusions(pairs, spec)
    return {_mask_id(gt): cm for (gt, _), cm in zip(pairs, cms, strict=True)}


def evaluate_masks(gt_dir: Path, pred_dir: Path, spec: DatasetSpec | None = None) -> dict[str, Any]:
    """mIoU over all pixels of all masks over spec's scored classes (default: the course's,
    to its last bit), per-class IoU by name, pixel accuracy; truth pixels of the ignore index
    left out."""
    from vislab.metrics.miou import scores

    spec = spec or builtin_spec("landcover")
    pairs = pair_masks(gt_dir, pred_dir)
    cms, ruled = _confusions(pairs, spec)
    spec.warn_rule(ruled)
    result = scores(np.sum(cms, axis=0), spec)
    result["n_masks"] = len(pairs)
    return result


def format_masks(result: dict[str, Any], spec: DatasetSpec | None, verbose: bool) -> str:
    """The lines `vislab evaluate` prints: the course's own for its land-cover set (then, with
    verbose, names and pixel accuracy), else one line per class, the mIoU, pixel accuracy."""
    from vislab.metrics.miou import format_details, format_named, format_scores

    if not _is_landcover(spec):
        return format_named(result, verbose)
    text = format_scores(result)
    return f"{text}\n{format_details(result)}" if verbose else text


def write_mask_scores(
    result: dict[str, Any],
    json_path: Path | None,
    out_dir: Path | None,
    spec: DatasetSpec | None = None,
) -> None:
    """--json FILE: the metrics (a nan mIoU as null); --out DIR: metrics.json, confusion.csv
    and confusion.png, with spec's class names."""
    spec = spec or builtin_spec("landcover")
    if out_dir is not None:
        out_dir = Path(out_dir)
        check_out_folder(out_dir)
    if json_path is not None:
        write_json(result, [json_path])
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(result, [out_dir / "metrics.json"])
        cm = np.asarray(result["confusion"])
        write_confusion(cm, list(spec.classes), out_dir, f"mIoU {result['miou']:.4f}")
