"""The arguments of every `vislab` verb, under the names of the keyword parameters of its
function in cli/verbs.py (the course's verbs: cli/course_verbs.py, which declares theirs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vislab.cli.course_verbs import declare_data, declare_reproduce, declare_submission
from vislab.cli.examples import EXAMPLES


def _train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        help="YAML recipe, e.g. configs/p1_model_a.yaml, or an ensemble recipe (a list of "
        "members, each a recipe and its overrides: each trains into --out/<member name>)",
    )
    p.add_argument(
        "--data",
        help="data root holding train_50/+val_50/, train/+val/ or train/+validation/ (the "
        "first found; data.train and data.val, when set, name others)",
    )
    p.add_argument("--out", help="run folder (default: runs/<config name>)")
    p.add_argument("--epochs", type=int, help="override trainer.epochs (every member's)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set optim.lr=0.05 (repeatable; an ensemble's "
        "members each take it after their own)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (an ensemble: its finished members kept)",
    )


def _predict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ckpt",
        required=True,
        type=Path,
        nargs="+",
        action="extend",
        help="a vislab checkpoint, or a .safetensors / .onnx file from vislab export; several "
        "(of one task and the same classes) predict as an ensemble, the mean of their class "
        "probabilities; the --out folder of an ensemble recipe stands for its members' "
        "best.ckpt",
    )
    p.add_argument(
        "--images",
        required=True,
        type=Path,
        help="folder of images (.png, .jpg, .jpeg, .bmp, .webp, .tif, .tiff; its images/ when "
        "it has one)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="classifier: output CSV (filename,class name); segmenter: folder for xxxx.png "
        "masks, each at its image's size",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["palette", "rgb", "index"],
        help="segmenter's masks: palette (palette-mode PNG in the data set's colours, reads "
        "back as class indices), rgb, or index (grey level = class index); default: the data "
        "set's own (palette; rgb for the course's land-cover set)",
    )
    p.add_argument("--batch-size", type=int, help="images per batch (default 500 / 4)")
    _device(p)
    p.add_argument(
        "--precision",
        choices=["32", "bf16", "fp16"],
        default="32",
        help="autocast: bf16 (the CPU or a GPU that has it; slower than fp32 on our 2-core "
        "Xeon and not bit-identical) or fp16 (GPUs only); default: 32",
    )
    p.add_argument("--threads", type=int, help="torch threads (default: the free cores)")
    p.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image's prediction with its mirror "
        "image's (classification, twice the time: +0.7 to +2 points of val accuracy here), "
        "or with the tile's 8 flips and 90-degree turns (segmentation, 4x the time: +0.0076 "
        "mIoU here); docs/RESULTS.md",
    )
    p.add_argument(
        "--engine",
        choices=["auto", "torch", "onnxruntime"],
        default="auto",
        help="auto: ONNX Runtime for a .onnx file or when the CKPT.onnx beside the checkpoint "
        "was exported from it (vislab export; its SHA-256 recorded), else PyTorch; "
        "onnxruntime: export first if needed (default: auto)",
    )


def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="where the model runs: auto (the first CUDA GPU when there is one, else the "
        "CPU), cpu, cuda, cuda:N or mps (default: auto)",
    )


def _evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pred",
        required=True,
        type=Path,
        help="prediction CSV (filename,label), or a folder of predicted masks (xxxx.png or "
        ".tif, paired with the truth's xxxx or xxxx_mask by stem)",
    )
    p.add_argument(
        "--gt",
        required=True,
        type=Path,
        help="ground truth: a CSV of class names or integers, a flat labeled folder or an "
        "ImageFolder tree; for masks, the folder of masks (xxxx_mask.png beside xxxx_sat.jpg, "
        "or masks/ of an images/ + masks/ folder)",
    )
    p.add_argument(
        "--json",
        dest="json_path",
        metavar="JSON",
        type=Path,
        help="write the scores as JSON to this file",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="masks: pixel accuracy (and for the course's set, after its lines, class names "
        "and the mean over present classes)",
    )
    _spec_source(p, "evaluate")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for metrics.json, confusion.csv and confusion.png "
        "(classification default: <pred>_eval beside the CSV; masks: none)",
    )


def _spec_source(p: argparse.ArgumentParser, verb: str) -> None:
    """--ckpt / --config: where `verb` finds the data set's classes, colours and ignore index."""
    p.add_argument(
        "--ckpt",
        type=Path,
        help=f"{verb} with the classes (and colours) this model file was trained on: a "
        "checkpoint, .safetensors or .onnx",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="or with those of a recipe (data.spec or data.classes, data.palette, "
        "data.ignore_index, data.mask_format); default: the course's land-cover set",
    )


def _overlay(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image",
        required=True,
        type=Path,
        help="a tile (xxxx_sat.jpg, .png, .tif), or a folder of them (its images/ when it has one)",
    )
    p.add_argument(
        "--mask",
        required=True,
        type=Path,
        help="the mask, or a folder of xxxx_mask.png or xxxx.png (.tif) masks (its masks/ "
        "when it has one)",
    )
    _spec_source(p, "overlay")
    p.add_argument("--out", required=True, type=Path, help="output PNG, or a folder for them")
    p.add_argument(
        "--full-band",
        action="store_true",
        help="draw the 5-pixel edge band on all four sides of every region (the course's "
        "script, matched by default, draws 1 pixel below a region and no vertical edges in "
        "column 0)",
    )


def _embed(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source", type=Path, help="a run folder (t-SNE at its snapshots) or one checkpoint"
    )
    p.add_argument("--data", type=Path, help="labeled folder (default: the run's val set)")
    p.add_argument("--out", type=Path, help="output folder (default: RUN/embed)")
    _device(p)


def _progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="a segmentation run folder with snapshots")
    p.add_argument(
        "--tiles",
        nargs="+",
        help="validation tile ids (default: for the course's land-cover set the report's "
        "0013 0062 0104 when present, else the first three)",
    )
    p.add_argument("--data", type=Path, help="validation folder (default: from the run's config)")
    p.add_argument("--out", type=Path, help="output PNG (default: RUN/progress.png)")
    _device(p)


def _report(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs",
        nargs="+",
        type=Path,
        help="run folders, classification or segmentation; an ensemble's folder (vislab train "
        "of an ensemble recipe) stands for its members' runs, and adds its own row",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--pdf",
        nargs="?",
        type=Path,
        const=True,
        help="also print the report to this PDF (default OUT/report.pdf; the course hands in "
        "hw1_<ID>.pdf) with a headless Chromium",
    )
    _device(p)


def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, type=Path, help="a vislab checkpoint")
    p.add_argument(
        "--format",
        dest="fmt",
        required=True,
        choices=["safetensors", "onnx"],
        help="safetensors: weights only, loadable without running code; onnx: the whole "
        "model for ONNX Runtime; vislab predict --ckpt takes either",
    )
    p.add_argument("--out", type=Path, help="output file (default: CKPT with the new suffix)")
    _device(p)


def _models(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="a model: print its layer table with output shapes")
    p.add_argument(
        "--search",
        metavar="TEXT",
        help="list timm's and torchvision's classifiers whose names hold TEXT (timm/NAME, "
        "torchvision/NAME), with parameters and the input size of their weights",
    )
    p.add_argument(
        "--encoder",
        metavar="timm/NAME",
        help="the encoder of fpn, unet or deeplabv3plus (listed: timm/resnet18)",
    )
    p.add_argument("--size", type=int, default=32, help="input size for the layer table")
    p.add_argument(
        "--draw", type=Path, metavar="FILE.png", help="also draw the model's diagram into FILE.png"
    )
    p.add_argument(
        "--task", choices=["classification", "segmentation"], help="only models of this task"
    )
    p.add_argument(
        "--num-classes", type=int, help="head size for the count (default: 50 / 7, the course's)"
    )


VERBS = {  # name: (help, the function that declares its arguments)
    "train": ("train a model from a YAML recipe into a run folder", _train),
    "predict": ("predict a folder of images with a checkpoint", _predict),
    "evaluate": ("score predictions against the ground truth", _evaluate),
    "overlay": ("draw masks over their tiles in the data set's colours", _overlay),
    "embed": ("PCA and t-SNE of a classifier's second-to-last layer", _embed),
    "progress": ("grid of predicted masks at the early, middle and final snapshot", _progress),
    "report": ("write the HTML report (and its Markdown twin) from run folders", _report),
    "export": ("write a checkpoint's model as safetensors weights or an ONNX model", _export),
    "submission": (
        "a folder of hw1_1.sh / hw1_2.sh that runs in the course's environment",
        declare_submission,
    ),
    "data": ("fetch the course data, or write a small demo set in the same layout", declare_data),
    "reproduce": (
        "train every run the report needs, analyse them, write the report",
        declare_reproduce,
    ),
    "models": ("list vislab's models, search timm's and torchvision's, show one's layers", _models),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vislab",
        description="Train, evaluate and explain image classifiers and segmenters.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, declare) in VERBS.items():
        declare(
            sub.add_parser(
                name,
                help=text,
                description=text,
                epilog="example:\n  " + EXAMPLES[name],
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return p
