"""`vislab report RUN... --out DIR`: the experiment's report, from run folders only.

Writes DIR/report.html (one self-contained file, figures embedded) and DIR/report.md (its
Markdown twin, figures in DIR/figures/). Every number comes from a run folder: the resolved
config, metrics.csv, and what `vislab embed` and `vislab progress` wrote there. What is missing
is shown as missing, never invented.
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vislab.errors import VislabError
from vislab.run_folder import RunFolder
from vislab.tasks import task_spec

REPORT_MODELS = {
    "classification": {"model_a": "Model A", "resnext101_64x4d": "Model B"},
    "segmentation": {"fcn32s_vgg16": "Model A", "deeplabv3_resnet50": "Model B"},
}
# Models that train on 2 CPU cores in place of the report's Model B (configs/p1_cpu.yaml and
# p2_cpu.yaml from scratch, p1_lite.yaml and p2_lite.yaml fine-tuned from ImageNet); the
# report's own Model B row stays "missing".
CPU_STAND_INS = {
    "resnet9": "ResNet-9",
    "lraspp_mobilenet_v3": "LR-ASPP MobileNetV3",
    "efficientnet_lite0": "EfficientNet-Lite0",
    "efficientnet_lite1": "EfficientNet-Lite1",
    "efficientnet_lite2": "EfficientNet-Lite2",
    "fpn_efficientnet_lite": "EfficientNet-Lite{variant}",
}


def _role(cfg: dict[str, Any]) -> str:
    """'Model A', 'Model B', 'CPU stand-in for Model B, fine-tuned from ImageNet
    (EfficientNet-Lite0)', or 'other'; a second stage names its first."""
    task, m = cfg["task"], cfg["model"]
    role = REPORT_MODELS[task].get(m["name"])
    if role is None and m["name"] in CPU_STAND_INS:
        kwargs = {"variant": 0, **m["kwargs"]}
        net = CPU_STAND_INS[m["name"]].format(**kwargs)
        if m.get("init"):  # the start is the first stage's, named below
            role = f"CPU stand-in for Model B ({net})"
        else:
            start = "fine-tuned from ImageNet" if kwargs.get("weights") else "from scratch"
            role = f"CPU stand-in for Model B, {start} ({net})"
    role = role or "other"
    if m.get("init"):
        role += f", second stage of {m['init']}"
    return role


@dataclass
class Run:
    name: str
    path: Path
    task: str
    model: str
    role: str
    config: dict[str, Any]
    rows: list[dict[str, str]]
    figures: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] | None = None
    text: dict[str, str] = field(default_factory=dict)


def _f(row: dict[str, str], key: str) -> float | None:
    v = row.get(key)
    return float(v) if v not in (None, "", "nan") else None


def read_run(path: Path) -> Run:
    folder = RunFolder(path)
    cfg = folder.config().to_dict()  # checked as training checks it; the templates read a dict
    task, model = cfg["task"], cfg["model"]["name"]
    return Run(folder.path.name, folder.path, task, model, _role(cfg), cfg, folder.metrics())


def _stage_minutes(run: Run) -> tuple[float, bool]:
    """Training minutes of the run plus those of the runs its weights came from (model.init:
    <run>/checkpoints/<name>.ckpt), and whether every such stage was found; a stage that was
    not is named as missing."""
    minutes, stage, seen = 0.0, run, {run.path.resolve()}
    while True:
        minutes += sum(_f(r, "epoch_s") or 0 for r in stage.rows) / 60
        init = stage.config["model"].get("init")
        if not init:
            return minutes, True
        folder = Path(init).resolve().parents[1]
        if folder in seen:
            run.missing.append(f"the first stage: model.init of {folder} leads back to itself")
            return minutes, False
        if not RunFolder(folder).exists():
            run.missing.append(f"the run folder of {init} (train time leaves that stage out)")
            return minutes, False
        seen.add(folder)
        stage = read_run(folder)


def _facts(run: Run) -> None:
    spec = task_spec(run.task)
    key = spec.monitor
    scored = [r for r in run.rows if _f(r, key) is not None]
    if not scored:
        run.missing.append("metrics.csv with validation scores")
        return
    best = max(scored, key=lambda r: _f(r, key))
    minutes, all_stages = _stage_minutes(run)
    run.facts = {
        "metric": spec.metric,
        "best": _f(best, key),
        "best_epoch": int(best["epoch"]),
        "final": _f(scored[-1], key),
        "epochs_done": int(scored[-1]["epoch"]),
        "epochs_planned": run.config["trainer"]["epochs"],
        "train_minutes": minutes,  # earlier stages included, when found
        "all_stages": all_stages,
        "best_row": best,
    }
    if run.task == "classification" and _f(scored[-1], "train_acc") is not None:
        run.facts["final_train_acc"] = _f(scored[-1], "train_acc")


def _architecture(run: Run) -> None:
    from vislab.models import without_weights

    kwargs = without_weights(run.config["model"]["kwargs"])
    size = run.config["data"]["image_size"] or task_spec(run.task).image_size
    run.architecture = architecture(run.model, run.config["model"]["num_classes"], size, kwargs)


def architecture(name: str, num_classes: int, size: int, kwargs: dict | None = None) -> dict:
    from vislab.analysis.architecture import layer_table
    from vislab.models import create_model, model_doc

    model = create_model(name, num_classes=num_classes, **(kwargs or {}))
    return {"name": name, "doc": model_doc(name), **layer_table(model, (size, size))}


def report_architectures(runs: list[Run]) -> list[dict]:
    """Layer tables of the report's four models and of every other model a run used."""
    wanted = [
        ("model_a", 50, 32),
        ("resnext101_64x4d", 50, 32),
        ("fcn32s_vgg16", 7, 512),
        ("deeplabv3_resnet50", 7, 512),
    ]
    by_model = {r.model: r.architecture for r in runs}  # a run's own table wins
    tables = [by_model.pop(name, None) or architecture(name, k, size) for name, k, size in wanted]
    return tables + list(by_model.values())


def missing_roles(runs: list[Run], task: str) -> list[tuple[str, str]]:
    """(role, model) of the report's models that no given run stands for."""
    roles = {r.role for r in runs if r.task == task}
    return [(role, m) for m, role in REPORT_MODELS[task].items() if role not in roles]


def _analysis(run: Run, figures: Path) -> None:
    from vislab.report.figures import plot_curves

    if run.rows:
        curves = figures / f"{run.name}_curves.png"
        plot_curves(run.rows, task_spec(run.task).curves, f"{run.name} ({run.model})", curves)
        run.figures["curves"] = curves
    if task_spec(run.task).analysis == "embed":
        embed = RunFolder(run.path).embed_dir
        if (embed / "metrics.json").is_file():
            run.facts["embed"] = json.loads((embed / "metrics.json").read_text())
            for name in ("pca", "tsne"):
                if (embed / f"{name}.png").is_file():
                    run.figures[name] = embed / f"{name}.png"
        else:
            run.missing.append(f"PCA and t-SNE figures (run `vislab embed {run.path}`)")
    else:
        prog = RunFolder(run.path).progress_figure
        if prog.is_file() and prog.with_suffix(".json").is_file():
            run.figures["progress"] = prog
            run.facts["progress"] = json.loads(prog.with_suffix(".json").read_text())
        else:
            run.missing.append(f"mask progress figure (run `vislab progress {run.path}`)")


def budget_figure(runs: list[Run], task: str, path: Path) -> tuple[Path, str] | None:
    """The score of each run of task against its training minutes (earlier stages of a second
    stage not included), and a sentence of what each reached when; None when no run of task
    has scores."""
    from vislab.report.figures import plot_budget

    spec = task_spec(task)
    key = spec.monitor
    lines, said = [], []
    for run in runs:
        if run.task != task:
            continue
        minutes, scores, total = [], [], 0.0
        for r in run.rows:
            total += (_f(r, "epoch_s") or 0) / 60
            if _f(r, key) is not None:
                minutes.append(total)
                scores.append(_f(r, key))
        if scores:
            lines.append((f"{run.name} ({run.model})", minutes, scores))
            best = max(range(len(scores)), key=scores.__getitem__)
            said.append(f"{run.name} {scores[best]:.4f} after {minutes[best]:.0f} min")
    if not lines:
        return None
    plot_budget(lines, spec.metric, path)
    return path, "Best validation score and when it was reached: " + "; ".join(said) + "."


def _stages_said(run: Run) -> str:
    init = run.config["model"].get("init")
    if not init:
        return "."
    if run.facts["all_stages"]:
        return f", with the run its weights came from ({init})."
    return f" in this stage alone; its weights came from {init}, whose run was not found."


def _explain(run: Run) -> None:
    """Short explanations, every number read from the run."""
    f = run.facts
    if "best" not in f:
        return
    t = (
        f"{run.name} ({run.model}) reached its best validation {f['metric']} of {f['best']:.4f} "
        f"at epoch {f['best_epoch']} of {f['epochs_done']} (planned {f['epochs_planned']}); "
        f"the last epoch scored {f['final']:.4f}. Training took {f['train_minutes']:.1f} min"
        + _stages_said(run)
    )
    if "final_train_acc" in f:
        gap = f["final_train_acc"] - f["final"]
        t += f" Train accuracy ended at {f['final_train_acc']:.4f}, {gap:.2f} above validation" + (
            ": the network memorises the training set." if gap > 0.2 else "."
        )
    run.text["result"] = t
    e = f.get("embed")
    if e:
        p = e["pca"]
        run.text["pca"] = (
            f"The first two principal components of the {e['feature_dim']}-dimensional "
            f"second-to-last layer (epoch {p['epoch']}) explain "
            f"{p['explained_variance'][0]:.1%} and {p['explained_variance'][1]:.1%} of its "
            f"variance. In this plane a 10-nearest-neighbour classifier reaches "
            f"{p['knn_acc_2d']:.3f} (chance: {1 / run.config['model']['num_classes']:.3f}) and "
            f"the silhouette of the true classes is {p['silhouette_2d']:.3f}: a linear 2-D view "
            "keeps only a little of the class structure."
        )
        ts = e["tsne"]
        steps = " → ".join(f"{x['knn_acc_2d']:.3f}" for x in ts)
        sil = " → ".join(f"{x['silhouette_2d']:.3f}" for x in ts)
        epochs = ", ".join(str(x["epoch"]) for x in ts)
        rows = {int(r["epoch"]): r for r in run.rows}
        accs = [_f(rows[x["epoch"]], "val_acc") for x in ts if x["epoch"] in rows]
        acc_txt = (" → ".join(f"{a:.3f}" for a in accs)) if len(accs) == len(ts) else None
        run.text["tsne"] = (
            f"At epochs {epochs}, 10-NN accuracy in the t-SNE plane goes {steps} and the "
            f"silhouette {sil}"
            + (f", while validation accuracy goes {acc_txt}" if acc_txt else "")
            + ". Classes that form their own islands are the ones the network tells apart; "
            "the mixed centre holds the classes it confuses."
        )
    prog = f.get("progress")
    if prog:
        parts = []
        for tile, values in prog["miou"].items():
            shown = " → ".join(f"{v:.3f}" for v in values)
            parts.append(f"tile {tile}: {shown}")
        text = (
            f"mIoU of each tile at epochs {', '.join(map(str, prog['epochs']))}: "
            + "; ".join(parts)
            + "."
        )
        if "predicted_share" in prog:
            truth, first = prog["truth_share"], prog["predicted_share"][0]
            top = max(first, key=first.get)
            text += (
                f" At epoch {prog['epochs'][0]}, {first[top]:.0%} of these tiles' pixels are "
                f"predicted {top} (truth: {truth[top]:.0%});"
                f" by epoch {prog['epochs'][-1]}, {prog['predicted_share'][-1][top]:.0%}."
            )
        run.text["progress"] = text


def details(run: Run) -> list[tuple[str, str]]:
    """Implementation details, read from the resolved config."""
    c, d, o, t = run.config, run.config["data"], run.config["optim"], run.config["trainer"]
    aug = [
        name
        for name, on in (
            (f"random crop (pad {d.get('crop_padding')})", d.get("crop_padding")),
            (f"random {d.get('crop_size')} crops", d.get("crop_size")),
            ("horizontal flips", d.get("hflip")),
            ("vertical flips", d.get("vflip")),
            ("90-degree rotations", d.get("rot90")),
            (f"MixUp (alpha {d.get('mixup')})", d.get("mixup")),
            (f"CutMix (alpha {d.get('cutmix')})", d.get("cutmix")),
        )
        if on
    ]
    opt = f"{o['name']} lr {o['lr']}, weight decay {o['weight_decay']}"
    if o["name"] == "sgd":
        opt += f", momentum {o['momentum']}"
    size = d.get("image_size")
    return [
        ("model", f"{c['model']['name']} {c['model'].get('kwargs') or ''}".strip()),
        ("optimizer", opt),
        ("schedule", o["schedule"]),
        (
            "loss",
            "cross-entropy"
            + (f", label smoothing {o['label_smoothing']}" if o.get("label_smoothing") else ""),
        ),
        ("epochs, batch size", f"{t['epochs']}, {d['batch_size']}"),
        ("input", f"{size}x{size}" if size else "as stored"),
        ("augmentation", ", ".join(aug) or "none"),
        ("precision", f"{t['precision']}" + (", channels_last" if t.get("channels_last") else "")),
        ("seed", str(c["seed"])),
    ]


def build(runs: list[Path], out: Path) -> Path:
    """Write report.html and report.md into out; returns the HTML path."""
    import jinja2

    if not runs:
        raise VislabError("give at least one run folder")
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    loaded = [read_run(r) for r in runs]
    for run in loaded:
        _facts(run)
        _architecture(run)
        _analysis(run, figures)
        _explain(run)
        for key, src in list(run.figures.items()):
            dest = figures / f"{run.name}_{key}.png"
            if src.resolve() != dest.resolve():
                shutil.copyfile(src, dest)
            run.figures[key] = dest
    from vislab.data.landcover import CLASSES

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vislab.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def embed_png(path: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()

    budgets = {
        task: budget_figure(loaded, task, figures / f"budget_{task}.png")
        for task in ("classification", "segmentation")
    }
    context = {
        "budgets": budgets,
        "p1": [r for r in loaded if r.task == "classification"],
        "p2": [r for r in loaded if r.task == "segmentation"],
        "p1_missing": missing_roles(loaded, "classification"),
        "p2_missing": missing_roles(loaded, "segmentation"),
        "architectures": report_architectures(loaded),
        "classes": CLASSES[:6],
        "details": details,
    }
    html = env.get_template("report.html.j2").render(**context, src=embed_png)
    md = env.get_template("report.md.j2").render(**context, src=lambda p: f"figures/{Path(p).name}")
    (out / "report.html").write_text(html)
    (out / "report.md").write_text(md)
    return out / "report.html"
