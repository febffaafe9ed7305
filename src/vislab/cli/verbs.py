"""The verbs of the `vislab` command: one typed function each, called by keyword with the
parsed arguments (cli/parser.py declares them under the same names). Each imports what it
needs when it runs, so that `vislab evaluate` and `vislab --help` start fast.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from vislab.errors import VislabError
from vislab.fileio import refuse_writing_over_inputs, staged_into
from vislab.run_folder import RunFolder


def _files(path: Path | None, images: bool = False) -> list[Path]:
    """path, and the files of it when it is a folder (what a command reads from it: its
    images only when images)."""
    from vislab.data.images import IMAGE_SUFFIXES

    if path is None:
        return []
    if not path.is_dir():
        return [path]
    found = (f for f in path.iterdir() if f.is_file())
    return [path, *sorted(f for f in found if not images or f.suffix.lower() in IMAGE_SUFFIXES)]


def _run_inputs(path: Path | None) -> list[Path]:
    """What a command that analyses a run (or a checkpoint) reads of it."""
    if path is None or not path.is_dir():
        return [path] if path else []
    return RunFolder(path).inputs()


def train(
    *,
    config: str,
    data: str | None,
    out: str | None,
    epochs: int | None,
    overrides: list[str] | None,
    resume: bool,
) -> None:
    from vislab.config import load_config
    from vislab.ensembles import is_ensemble, train_members
    from vislab.train.run import train as train_run

    overrides = list(overrides or [])
    if data is not None:
        overrides.append(f"data.root={data}")
    if epochs is not None:
        overrides.append(f"trainer.epochs={epochs}")
    folder = Path(out) if out else Path("runs") / Path(config).stem
    if is_ensemble(config):
        train_members(Path(config), overrides, folder, resume)
    else:
        train_run(load_config(config, overrides), folder, resume=resume)


def predict(
    *,
    ckpt: list[Path],
    images: Path,
    out: Path,
    batch_size: int | None,
    precision: str,
    threads: int | None,
    engine: str,
    tta: bool,
    fmt: str | None = None,
    device: str = "auto",
) -> None:
    from vislab.course.leak import warn_cifar100
    from vislab.ensembles import checkpoints
    from vislab.infer.meta import read_meta
    from vislab.infer.predict import predict_folder

    ckpt = checkpoints(ckpt)
    refuse_writing_over_inputs([("--out", out)], [*ckpt, *_files(images, images=True)], [images])
    for one in ckpt:
        if images.name in ("train_50", "val_50") and one.is_file():
            meta = read_meta(one)
            init = ((meta.config or {}).get("model") or {}).get("init")
            warn_cifar100([one.resolve(), meta.model_kwargs.get("weights"), init], [images])
    n, ran = predict_folder(
        ckpt,
        images,
        out,
        batch_size=batch_size,
        precision=precision,
        threads=threads,
        engine=engine,
        tta=tta,
        fmt=fmt,
        device=device,
    )
    print(f"wrote {out} ({n} images, {ran})")


def evaluate(
    *,
    pred: Path,
    gt: Path,
    json_path: Path | None,
    verbose: bool,
    out: Path | None,
    ckpt: Path | None = None,
    config: Path | None = None,
) -> None:
    written = [("--json", json_path)]
    if out is not None:
        written += [("--out", out / n) for n in ("metrics.json", "confusion.csv", "confusion.png")]
    refuse_writing_over_inputs(
        written, [*_files(pred, images=True), *_files(gt, images=True), ckpt, config], [pred, gt]
    )
    if pred.is_dir():
        from vislab.metrics.evaluate import command_spec
        from vislab.metrics.mask_scores import evaluate_masks, format_masks, write_mask_scores

        spec = command_spec(ckpt, config)
        result = evaluate_masks(gt, pred, spec)
        print(format_masks(result, spec, verbose))
        write_mask_scores(result, json_path=json_path, out_dir=out, spec=spec)
        return
    from vislab.metrics.evaluate import command_classes, evaluate_classification, format_report

    classes = command_classes(ckpt, config)
    result = evaluate_classification(pred, gt, out_dir=out, json_path=json_path, classes=classes)
    print(format_report(result))
    print(f"wrote metrics.json, confusion.csv, confusion.png to {result['out_dir']}")


def overlay(
    *,
    image: Path,
    mask: Path,
    out: Path,
    full_band: bool,
    ckpt: Path | None = None,
    config: Path | None = None,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from vislab.analysis.overlay import overlay_file, overlay_jobs
    from vislab.metrics.evaluate import command_spec

    spec = command_spec(ckpt, config)
    jobs = overlay_jobs(image, mask, out)
    with contextlib.ExitStack() as stack:
        if image.is_dir():  # the overlays move in together once all are drawn
            staged = stack.enter_context(staged_into(out, "--out"))
            jobs = [(i, m, staged / o.name) for i, m, o in jobs]
        with ThreadPoolExecutor(2) as pool:  # decoding and encoding release the GIL
            ruled = list(pool.map(lambda j: overlay_file(*j, full=full_band, spec=spec), jobs))
    spec.warn_rule({m.name: n for (_, m, _), n in zip(jobs, ruled, strict=True)})
    print(f"wrote {len(jobs)} overlays to {out}" if image.is_dir() else f"wrote {out}")


def progress(
    *,
    run: Path,
    tiles: list[str] | None,
    data: Path | None,
    out: Path | None,
    device: str = "auto",
) -> None:
    from vislab.analysis.progress import progress as mask_progress
    from vislab.devices import resolve_device

    dev = resolve_device(device)

    if out is not None:
        written = [("--out", out), ("--out", out.with_suffix(".json"))]
        folder = data or RunFolder(run).val_folder()
        refuse_writing_over_inputs(
            written, [*_run_inputs(run), *_files(folder, images=True)], [folder]
        )
    result = mask_progress(run, out=out, tiles=tiles, data=data, device=dev)
    for tile, values in result["miou"].items():
        shown = ", ".join(
            f"epoch {e}: {v:.3f}" for e, v in zip(result["epochs"], values, strict=True)
        )
        print(f"{tile} mIoU  {shown}")
    print(f"wrote {result['figure']}")


def embed(*, source: Path, data: Path | None, out: Path | None, device: str = "auto") -> None:
    from vislab.analysis.embed import embed as embed_run
    from vislab.devices import resolve_device

    dev = resolve_device(device)

    if out is not None:
        written = [
            ("--out", out / n) for n in ("coords.npz", "metrics.json", "pca.png", "tsne.png")
        ]
        folder = data or (RunFolder(source).val_folder() if source.is_dir() else None)
        refuse_writing_over_inputs(
            written, [*_run_inputs(source), *_files(folder, images=True)], [folder]
        )
    r = embed_run(source, out=out, data=data, device=dev)
    lines = [(f"PCA (epoch {r['pca']['epoch']})", r["pca"])]
    lines += [(f"t-SNE epoch {t['epoch']}", t) for t in r["tsne"]]
    for name, s in lines:
        print(f"{name}: 10-NN acc {s['knn_acc_2d']:.3f}, silhouette {s['silhouette_2d']:.3f}")
    print(f"wrote pca.png, tsne.png, coords.npz, metrics.json to {r['out']}")


def report(*, runs: list[Path], out: Path, pdf: Path | bool | None, device: str = "auto") -> None:
    from vislab.devices import resolve_device
    from vislab.report.build import build

    dev = resolve_device(device)

    pdf = Path(out) / "report.pdf" if pdf is True else pdf
    written = [("--out", Path(out) / n) for n in ("report.html", "report.md", "figures")]
    refuse_writing_over_inputs([*written, ("--pdf", pdf)], [f for r in runs for f in _files(r)])
    if pdf is not None and pdf.suffix.lower() != ".pdf":
        raise VislabError(
            f"--pdf {pdf}: give a file name ending in .pdf, or --pdf alone for OUT/report.pdf "
            "(what follows --pdf is read as the PDF's name)"
        )
    path = build(runs, out, pdf, device=dev)
    print(f"wrote {path} and {path.with_suffix('.md')}" + (f" and {pdf}" if pdf else ""))


def export(*, ckpt: Path, fmt: str, out: Path | None, device: str = "auto") -> None:
    from vislab.devices import resolve_device
    from vislab.infer.export import export as export_model

    dev = resolve_device(device)
    refuse_writing_over_inputs([("--out", out)], [ckpt])
    print(f"wrote {export_model(ckpt, fmt, out, device=dev)}")


EXAMPLE_ENCODER = "timm/resnet18"  # the encoder a decoder is counted with in the list
DECODERS = ("fpn", "unet", "deeplabv3plus")


def models(
    *,
    name: str | None,
    search: str | None,
    encoder: str | None,
    size: int,
    task: str | None,
    num_classes: int | None,
    draw: Path | None,
) -> None:
    from vislab.models import create_model, list_models, model_doc, model_task
    from vislab.tasks import task_spec

    def build(model: str, enc: str | None = encoder):
        k = num_classes or task_spec(model_task(model)).num_classes
        return create_model(model, num_classes=k, **({"encoder": enc} if enc else {}))

    if draw is not None and draw.suffix.lower() != ".png":
        raise VislabError(f"--draw writes a PNG: give a FILE.png, not {draw}")
    if search is not None:
        if name or draw:
            raise VislabError("--search lists names: give it alone (vislab models --search TEXT)")
        _search(search)
        return
    if name in DECODERS and not encoder:
        raise VislabError(f"{name} is a decoder: vislab models {name} --encoder timm/NAME")
    if name:
        from vislab.analysis.architecture import format_table, layer_table

        model = build(name)
        print(f"{name}: {model_doc(name)}")
        print(format_table(layer_table(model, (size, size))))
        if draw is not None:
            from vislab.analysis.diagram import caption, diagram
            from vislab.analysis.diagram_plot import draw as draw_diagram

            d = diagram(model, (size, size))
            draw_diagram(d, f"{name}, input 3x{size}x{size}", draw)
            print(f"drawn into {draw}: {caption(d)}")
        return
    if draw is not None:
        raise VislabError("--draw needs a model name: vislab models NAME --draw FILE.png")
    names = list_models(task)
    w = max(len(n) for n in names)
    print(f"{'name':<{w}} {'task':<15} {'params':>12}  description")
    for n in names:
        model = build(n, (encoder or EXAMPLE_ENCODER) if n in DECODERS else None)
        params = sum(p.numel() for p in model.parameters())
        print(f"{n:<{w}} {model_task(n):<15} {params:>12,}  {model_doc(n)}")
    print(
        f"(fpn, unet, deeplabv3plus counted over {encoder or EXAMPLE_ENCODER}; any timm "
        "classifier is timm/NAME and any torchvision one torchvision/NAME: "
        "vislab models --search TEXT)"
    )


def _search(text: str) -> None:
    from vislab.models.catalog import search

    rows, total = search(text)
    if not rows:
        raise VislabError(f"no timm or torchvision classifier has {text!r} in its name")
    w = max(len(r.name) for r in rows)
    print(f"{'name':<{w}} {'params':>13} {'input':>6}  weights")
    for r in rows:
        params = f"{r.params:,}" if r.params is not None else "?"
        size = str(r.input_size) if r.input_size else "-"
        print(f"{r.name:<{w}} {params:>13} {size:>6}  {'yes' if r.pretrained else 'no'}")
    if total > len(rows):
        print(f"({total - len(rows)} more match {text!r}: search for a longer name)")
