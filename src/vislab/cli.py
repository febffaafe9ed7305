"""The `vislab` command: parses arguments and dispatches to plain functions.

Heavy libraries (torch, Lightning) are imported inside the verbs that need them, so that
`vislab evaluate` and `vislab --help` start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from pathlib import Path

from vislab.errors import VislabError, VislabWarning
from vislab.runtime import tune_allocator

EXAMPLES = {
    "train": "vislab train configs/p1_model_a.yaml --data ../shared/data/dlcv-p1 --out runs/a\n"
    "  vislab train configs/p1_model_a.yaml --out runs/a --resume\n"
    "  vislab train configs/p1_model_a.yaml --set optim.lr=0.05 --set data.hflip=true",
    "predict": "vislab predict --ckpt runs/a/checkpoints/best.ckpt --images val_50 --out pred.csv\n"
    "  vislab predict --ckpt runs/seg/checkpoints/best.ckpt --images validation --out masks/",
    "evaluate": "vislab evaluate --pred pred.csv --gt val_gt.csv\n"
    "  vislab evaluate --pred pred_masks/ --gt p2_data/validation --json scores.json",
    "report": "vislab report runs/p1_model_a runs/p2_cpu --out report/",
    "models": "vislab models\n  vislab models model_a\n"
    "  vislab models deeplabv3_resnet50 --size 512",
    "embed": "vislab embed runs/p1_model_a\n"
    "  vislab embed runs/p1_model_a/checkpoints/best.ckpt --data val_50 --out embed/",
    "progress": "vislab progress runs/p2_cpu\n"
    "  vislab progress runs/p2_cpu --tiles 0013 0062 0104 --out progress.png",
    "data": "vislab data download hw1 && vislab train configs/p1_cpu.yaml --data hw1/p1_data\n"
    "  vislab data download hw1 --zip ~/Downloads/hw1_data.zip\n"
    "  vislab data demo demo_data",
    "reproduce": "vislab reproduce hw1 --profile cpu --out runs/reproduce-cpu\n"
    "  vislab reproduce demo_data --profile demo --out runs/demo",
    "submission": "vislab submission --p1 runs/p1_lite/checkpoints/best.ckpt "
    "--p2 runs/p2_lite/checkpoints/best.ckpt --out hw1\n"
    "  cd hw1 && bash hw1_1.sh ../val_50 pred.csv",
    "export": "vislab export --ckpt runs/p2_cpu/checkpoints/best.ckpt --format onnx\n"
    "  vislab predict --ckpt runs/p2_cpu/checkpoints/best.onnx --images validation --out m/",
    "overlay": "vislab overlay --image validation/0013_sat.jpg --mask masks/0013.png --out o.png\n"
    "  vislab overlay --image validation --mask masks --out overlays/",
}


def cmd_train(args: argparse.Namespace) -> None:
    from vislab.config import load_config
    from vislab.train.run import train

    overrides = list(args.set or [])
    if args.data is not None:
        overrides.append(f"data.root={args.data}")
    if args.epochs is not None:
        overrides.append(f"trainer.epochs={args.epochs}")
    cfg = load_config(args.config, overrides)
    out = args.out or Path("runs") / Path(args.config).stem
    train(cfg, Path(out), resume=args.resume)


def cmd_predict(args: argparse.Namespace) -> None:
    from vislab.infer.predict import predict_folder

    n, engine = predict_folder(
        args.ckpt,
        args.images,
        args.out,
        batch_size=args.batch_size,
        precision=args.precision,
        threads=args.threads,
        engine=args.engine,
        tta=args.tta,
    )
    print(f"wrote {args.out} ({n} images, {engine})")


def cmd_evaluate(args: argparse.Namespace) -> None:
    if args.pred.is_dir():
        from vislab.metrics.evaluate import evaluate_masks, write_mask_scores
        from vislab.metrics.miou import format_details, format_scores

        result = evaluate_masks(args.gt, args.pred)
        print(format_scores(result))
        if args.verbose:
            print(format_details(result))
        write_mask_scores(result, args.json, args.out)
        return
    from vislab.metrics.evaluate import evaluate_classification, format_report

    result = evaluate_classification(args.pred, args.gt, args.out, args.json)
    print(format_report(result))
    print(f"wrote metrics.json, confusion.csv, confusion.png to {result['out_dir']}")


def cmd_overlay(args: argparse.Namespace) -> None:
    from vislab.analysis.overlay import overlay_file, pair_overlay_folders
    from vislab.data.landcover import warn_red

    if not args.image.is_dir():
        warn_red({args.mask.name: overlay_file(args.image, args.mask, args.out, args.full_band)})
        print(f"wrote {args.out}")
        return
    from concurrent.futures import ThreadPoolExecutor

    pairs = pair_overlay_folders(args.image, args.mask)
    with ThreadPoolExecutor(2) as pool:  # decoding and encoding release the GIL
        red = pool.map(
            lambda p: overlay_file(p[0], p[1], args.out / f"{p[2]}.png", args.full_band), pairs
        )
        warn_red({m.name: n for (_, m, _), n in zip(pairs, red, strict=True)})
    print(f"wrote {len(pairs)} overlays to {args.out}")


def cmd_progress(args: argparse.Namespace) -> None:
    from vislab.analysis.progress import progress

    result = progress(args.run, args.out, args.tiles, args.data)
    for tile, values in result["miou"].items():
        shown = ", ".join(
            f"epoch {e}: {v:.3f}" for e, v in zip(result["epochs"], values, strict=True)
        )
        print(f"{tile} mIoU  {shown}")
    print(f"wrote {result['figure']}")


def cmd_embed(args: argparse.Namespace) -> None:
    from vislab.analysis.embed import embed

    r = embed(args.source, args.out, args.data)
    p = r["pca"]
    print(
        f"PCA (epoch {p['epoch']}): 10-NN acc {p['knn_acc_2d']:.3f}, "
        f"silhouette {p['silhouette_2d']:.3f}"
    )
    for t in r["tsne"]:
        print(
            f"t-SNE epoch {t['epoch']}: 10-NN acc {t['knn_acc_2d']:.3f}, "
            f"silhouette {t['silhouette_2d']:.3f}"
        )
    print(f"wrote pca.png, tsne.png, coords.npz, metrics.json to {r['out']}")


def cmd_report(args: argparse.Namespace) -> None:
    from vislab.report.build import build

    path = build(args.runs, args.out)
    print(f"wrote {path} and {path.with_suffix('.md')}")


def cmd_export(args: argparse.Namespace) -> None:
    from vislab.infer.export import export

    print(f"wrote {export(args.ckpt, args.format, args.out)}")


def cmd_submission(args: argparse.Namespace) -> None:
    from vislab.submission.build import build_submission

    parts = build_submission(args.out, args.p1, args.p2, args.p1_url, args.p2_url)
    for problem, part in parts.items():
        where = "fetched by hw1_download.sh" if part["download"] else "in the folder"
        print(f"problem {problem}: {part['model']}, weights {part['mb']:.1f} MB ({where})")
    print(f"wrote {args.out} (bash hw1_1.sh / hw1_2.sh IMG_DIR OUT; see its README.md)")


def cmd_data(args: argparse.Namespace) -> None:
    from vislab.data.course import download, write_demo

    if args.action == "download":
        for line in download(args.dir, args.url, args.zip):
            print(line)
    elif args.url or args.zip:
        raise VislabError("--url and --zip belong to `vislab data download`")
    else:
        print(write_demo(args.dir))


def cmd_reproduce(args: argparse.Namespace) -> None:
    from vislab.reproduce import reproduce

    out = args.out or Path("runs") / f"reproduce-{args.profile}"
    report = reproduce(args.data, args.profile, out, args.configs, args.epochs)
    print(f"the report is {report}")


def cmd_models(args: argparse.Namespace) -> None:
    from vislab.models import create_model, list_models, model_doc, model_task

    if args.name:
        from vislab.analysis.architecture import format_table, layer_table

        k = args.num_classes or (50 if model_task(args.name) == "classification" else 7)
        model = create_model(args.name, num_classes=k)
        print(f"{args.name}: {model_doc(args.name)}")
        print(format_table(layer_table(model, (args.size, args.size))))
        return
    names = list_models(args.task)
    w = max(len(n) for n in names)
    print(f"{'name':<{w}} {'task':<15} {'params':>12}  description")
    for name in names:
        k = args.num_classes or (50 if model_task(name) == "classification" else 7)
        model = create_model(name, num_classes=k)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<{w}} {model_task(name):<15} {n:>12,}  {model_doc(name)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vislab",
        description="Train, evaluate and explain image classifiers and segmenters.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            epilog="example:\n  " + EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    t = add("train", "train a model from a YAML recipe into a run folder")
    t.add_argument("config", help="YAML recipe, e.g. configs/p1_model_a.yaml")
    t.add_argument(
        "--data",
        help="data root in the course layout (p1_data: train_50/, val_50/; "
        "p2_data: train/, validation/)",
    )
    t.add_argument("--out", help="run folder (default: runs/<config name>)")
    t.add_argument("--epochs", type=int, help="override trainer.epochs")
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set optim.lr=0.05 (repeatable)",
    )
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.set_defaults(func=cmd_train)

    pr = add("predict", "predict a folder of images with a checkpoint")
    pr.add_argument(
        "--ckpt",
        required=True,
        type=Path,
        help="a vislab checkpoint, or a .safetensors / .onnx file from vislab export",
    )
    pr.add_argument("--images", required=True, type=Path, help="folder of images")
    pr.add_argument(
        "--out",
        required=True,
        type=Path,
        help="classifier: output CSV (filename,label); segmenter: folder for xxxx.png masks",
    )
    pr.add_argument("--batch-size", type=int, help="images per batch (default 500 / 4)")
    pr.add_argument(
        "--precision",
        choices=["32", "bf16"],
        default="32",
        help="bf16: bf16 autocast; slower than fp32 on our 2-core Xeon and not bit-identical, "
        "may pay on CPUs with AMX or on GPUs (default: 32)",
    )
    pr.add_argument("--threads", type=int, help="torch threads (default: the free cores)")
    pr.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image's prediction with its mirror "
        "image's (classification, twice the time: +0.7 to +2 points of val accuracy here), "
        "or with the tile's 8 flips and 90-degree turns (segmentation, 4x the time: +0.0076 "
        "mIoU here); docs/RESULTS.md",
    )
    pr.add_argument(
        "--engine",
        choices=["auto", "torch", "onnxruntime"],
        default="auto",
        help="auto: ONNX Runtime for a .onnx file or when a fresh CKPT.onnx (vislab export) "
        "sits beside the checkpoint, else PyTorch; onnxruntime: export first if needed "
        "(default: auto)",
    )
    pr.set_defaults(func=cmd_predict)

    e = add("evaluate", "score predictions against the ground truth")
    e.add_argument(
        "--pred",
        required=True,
        type=Path,
        help="prediction CSV (filename,label), or a folder of predicted masks",
    )
    e.add_argument(
        "--gt",
        required=True,
        type=Path,
        help="ground truth: a CSV or a labeled image folder; for masks, the mask folder",
    )
    e.add_argument("--json", type=Path, help="write the scores as JSON to this file")
    e.add_argument(
        "--verbose",
        action="store_true",
        help="masks: after the course's lines, class names, the mean over present classes "
        "and pixel accuracy",
    )
    e.add_argument(
        "--out",
        type=Path,
        help="folder for metrics.json, confusion.csv and confusion.png "
        "(classification default: <pred>_eval beside the CSV; masks: none)",
    )
    e.set_defaults(func=cmd_evaluate)

    o = add("overlay", "draw masks over satellite tiles the way the course does")
    o.add_argument("--image", required=True, type=Path, help="xxxx_sat.jpg, or a folder of them")
    o.add_argument(
        "--mask",
        required=True,
        type=Path,
        help="the mask PNG, or a folder of xxxx_mask.png or xxxx.png masks",
    )
    o.add_argument("--out", required=True, type=Path, help="output PNG, or a folder for them")
    o.add_argument(
        "--full-band",
        action="store_true",
        help="draw the 5-pixel edge band on all four sides of every region (the course's "
        "script, matched by default, draws 1 pixel below a region and no vertical edges in "
        "column 0)",
    )
    o.set_defaults(func=cmd_overlay)

    b = add("embed", "PCA and t-SNE of a classifier's second-to-last layer")
    b.add_argument(
        "source", type=Path, help="a run folder (t-SNE at its snapshots) or one checkpoint"
    )
    b.add_argument("--data", type=Path, help="labeled folder (default: the run's val set)")
    b.add_argument("--out", type=Path, help="output folder (default: RUN/embed)")
    b.set_defaults(func=cmd_embed)

    g = add("progress", "grid of predicted masks at the early, middle and final snapshot")
    g.add_argument("run", type=Path, help="a segmentation run folder with snapshots")
    g.add_argument(
        "--tiles",
        nargs="+",
        help="validation tile ids (default: the report's 0013 0062 0104 when present, "
        "else the first three)",
    )
    g.add_argument("--data", type=Path, help="validation folder (default: from the run's config)")
    g.add_argument("--out", type=Path, help="output PNG (default: RUN/progress.png)")
    g.set_defaults(func=cmd_progress)

    rp = add("report", "write the HTML report (and its Markdown twin) from run folders")
    rp.add_argument(
        "runs", nargs="+", type=Path, help="run folders, classification or segmentation"
    )
    rp.add_argument("--out", required=True, type=Path, help="output folder")
    rp.set_defaults(func=cmd_report)

    x = add("export", "write a checkpoint's model as safetensors weights or an ONNX model")
    x.add_argument("--ckpt", required=True, type=Path, help="a vislab checkpoint")
    x.add_argument(
        "--format",
        required=True,
        choices=["safetensors", "onnx"],
        help="safetensors: weights only, loadable without running code; onnx: the whole "
        "model for ONNX Runtime; vislab predict --ckpt takes either",
    )
    x.add_argument("--out", type=Path, help="output file (default: CKPT with the new suffix)")
    x.set_defaults(func=cmd_export)

    sb = add("submission", "a folder of hw1_1.sh / hw1_2.sh that runs in the course's environment")
    sb.add_argument(
        "--p1", type=Path, help="problem 1: a classifier's checkpoint (or .safetensors)"
    )
    sb.add_argument("--p2", type=Path, help="problem 2: a segmenter's checkpoint (or .safetensors)")
    sb.add_argument("--out", required=True, type=Path, help="the folder, written afresh")
    for problem in ("1", "2"):
        sb.add_argument(
            f"--p{problem}-url",
            help=f"where you will upload p{problem}_model.pt: hw1_download.sh then fetches it "
            "with wget (needed when it is over GitHub's 50 MB)",
        )
    sb.set_defaults(func=cmd_submission)

    d = add("data", "fetch the course data, or write a small demo set in the same layout")
    d.add_argument(
        "action",
        choices=["download", "demo"],
        help="download: the course's hw1_data zip, unpacked to DIR/p1_data and DIR/p2_data; "
        "demo: scikit-learn's digits and generated land-cover tiles in that layout",
    )
    d.add_argument("dir", type=Path, help="folder to fill (p1_data/ and p2_data/ must not exist)")
    d.add_argument("--url", help="download: another address of hw1_data.zip")
    d.add_argument("--zip", type=Path, help="download: unpack this local hw1_data.zip instead")
    d.set_defaults(func=cmd_data)

    r = add("reproduce", "train every run the report needs, analyse them, write the report")
    r.add_argument(
        "data",
        type=Path,
        help="folder holding p1_data/ and p2_data/ (or dlcv-p1/ and dlcv-p2/)",
    )
    r.add_argument(
        "--profile",
        choices=["cpu", "paper", "demo"],
        default="cpu",
        help="cpu: from-scratch stand-ins, a few hours on 2 cores; paper: the report's exact "
        "settings, for a GPU; demo: the cpu profile's models and DeepLabv3 briefly, for "
        "`vislab data demo` data "
        "(default: cpu)",
    )
    r.add_argument("--out", type=Path, help="output folder (default: runs/reproduce-PROFILE)")
    r.add_argument(
        "--configs", type=Path, default=Path("configs"), help="recipe folder (default: configs)"
    )
    r.add_argument("--epochs", type=int, help="override every recipe's epochs (a dry run)")
    r.set_defaults(func=cmd_reproduce)

    m = add("models", "list the registered models, or show one model's layers")
    m.add_argument("name", nargs="?", help="a model: print its layer table with output shapes")
    m.add_argument("--size", type=int, default=32, help="input size for the layer table")
    m.add_argument(
        "--task", choices=["classification", "segmentation"], help="only models of this task"
    )
    m.add_argument(
        "--num-classes", type=int, help="head size for the count (default: 50 / 7, the course's)"
    )
    m.set_defaults(func=cmd_models)
    return p


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, VislabWarning):
        return f"vislab: warning: {message}\n"
    return _default_formatwarning(message, category, filename, lineno, line)


_default_formatwarning = warnings.formatwarning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()
    warnings.formatwarning = _format_warning
    try:
        args.func(args)
    except VislabError as e:
        if args.debug:
            traceback.print_exc()
        print(f"vislab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `vislab evaluate ... | head`: the reader left, as with any tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # a file or folder the user named: unreadable, unwritable, missing
        if args.debug:
            traceback.print_exc()
        where = f": {e.filename}" if e.filename else ""
        print(f"vislab {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
