"""`vislab report RUN... --out DIR`: the experiment's report, from run folders only.

Writes DIR/report.html (one self-contained file, figures embedded) and DIR/report.md (its
Markdown twin, figures in DIR/figures/). Every number comes from a run folder: the resolved
config, metrics.csv, and what `vislab embed` and `vislab progress` wrote there. What is missing
is shown as missing, never invented.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes
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


def number(row: dict[str, str], key: str) -> float | None:
    """A metrics.csv cell as a number; None when empty or nan."""
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
        minutes += sum(number(r, "epoch_s") or 0 for r in stage.rows) / 60
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
    scored = [r for r in run.rows if number(r, key) is not None]
    if not scored:
        run.missing.append("metrics.csv with validation scores")
        return
    best = max(scored, key=lambda r: number(r, key))
    minutes, all_stages = _stage_minutes(run)
    run.facts = {
        "metric": spec.metric,
        "best": number(best, key),
        "best_epoch": int(best["epoch"]),
        "final": number(scored[-1], key),
        "epochs_done": int(scored[-1]["epoch"]),
        "epochs_planned": run.config["trainer"]["epochs"],
        "train_minutes": minutes,  # earlier stages included, when found
        "all_stages": all_stages,
        "best_row": best,
    }
    if run.task == "classification" and number(scored[-1], "train_acc") is not None:
        run.facts["final_train_acc"] = number(scored[-1], "train_acc")


def _architecture(run: Run) -> None:
    from vislab.models import without_weights

    kwargs = without_weights(run.config["model"]["kwargs"])
    size = run.config["data"]["image_size"] or task_spec(run.task).image_size
    run.architecture = architecture(run.model, run.config["model"]["num_classes"], size, kwargs)


def architecture(name: str, num_classes: int, size: int, kwargs: dict | None = None) -> dict:
    from vislab.analysis.architecture import layer_table
    from vislab.analysis.diagram import diagram
    from vislab.models import create_model, model_doc

    model = create_model(name, num_classes=num_classes, **(kwargs or {}))
    return {
        "name": name,
        "doc": model_doc(name),
        **layer_table(model, (size, size)),
        "diagram": diagram(model, (size, size)),
    }


def draw_architectures(tables: list[dict], figures: Path) -> None:
    """Each table's diagram drawn into figures, with its caption."""
    from vislab.analysis.diagram import caption
    from vislab.analysis.diagram_plot import draw

    for a in tables:
        a["figure"] = figures / f"architecture_{a['name']}.png"
        title = f"{a['name']}: {a['total_params']:,} parameters, input {a['input']}"
        draw(a["diagram"], title, a["figure"])
        a["caption"] = caption(a["diagram"])


def report_architectures(runs: list[Run]) -> list[dict]:
    """Layer tables and diagrams of the report's four models and of every other model a run
    used."""
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
    from vislab.report.classes import balance, per_class
    from vislab.report.explorer import explorer
    from vislab.report.failures import failures
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
            explorer(run)
        else:
            run.missing.append(f"PCA and t-SNE figures (run `vislab embed {run.path}`)")
    else:
        prog = RunFolder(run.path).progress_figure
        if prog.is_file() and prog.with_suffix(".json").is_file():
            run.figures["progress"] = prog
            run.facts["progress"] = json.loads(prog.with_suffix(".json").read_text())
        else:
            run.missing.append(f"mask progress figure (run `vislab progress {run.path}`)")
    per_class(run, figures)
    balance(run, figures)
    failures(run, figures)


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
            total += (number(r, "epoch_s") or 0) / 60
            if number(r, key) is not None:
                minutes.append(total)
                scores.append(number(r, key))
        if scores:
            lines.append((f"{run.name} ({run.model})", minutes, scores))
            best = max(range(len(scores)), key=scores.__getitem__)
            said.append(f"{run.name} {scores[best]:.4f} after {minutes[best]:.0f} min")
    if not lines:
        return None
    plot_budget(lines, spec.metric, path)
    return path, "Best validation score and when it was reached: " + "; ".join(said) + "."


def build(runs: list[Path], out: Path, pdf: Path | None = None) -> Path:
    """Write report.html and report.md into out, and the PDF to pdf when given (printed by a
    headless Chromium, every layer table unfolded); returns the HTML path."""
    import jinja2

    from vislab.report.pdf import find_browser, print_pdf
    from vislab.report.text import details, explain

    if not runs:
        raise VislabError("give at least one run folder")
    browser = find_browser() if pdf is not None else None  # before the work, not after
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    loaded = _distinct_names([read_run(r) for r in runs])
    for run in loaded:
        _facts(run)
        _architecture(run)
        _analysis(run, figures)
        explain(run)
        for key, src in list(run.figures.items()):
            dest = figures / f"{run.name}_{key}.png"
            if src.resolve() != dest.resolve():
                atomic_write_bytes(dest, src.read_bytes())
            run.figures[key] = dest
    from vislab.course.landcover import CLASSES

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vislab.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def embed_png(path: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()

    architectures = report_architectures(loaded)
    draw_architectures(architectures, figures)
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
        "architectures": architectures,
        "classes": CLASSES[:6],
        "details": details,
    }
    html = env.get_template("report.html.j2")
    md = env.get_template("report.md.j2").render(**context, src=lambda p: f"figures/{Path(p).name}")
    atomic_write_bytes(out / "report.html", html.render(**context, src=embed_png).encode())
    atomic_write_bytes(out / "report.md", md.encode())
    if browser is not None:
        printed = out / ".report.print.html"  # the tables that the screen folds, unfolded
        atomic_write_bytes(printed, html.render(**context, src=embed_png, unfold=True).encode())
        try:
            print_pdf(printed, pdf, browser)
        finally:
            printed.unlink(missing_ok=True)
    return out / "report.html"


def _distinct_names(runs: list[Run]) -> list[Run]:
    """Runs whose folders share a name (a/p2, b/p2) are named with their parent folder too
    (a-p2, b-p2), so that each keeps its own figures and rows."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    taken: set[str] = set()
    for i, run in enumerate(runs):
        if counts[run.name] > 1:
            name = f"{run.path.parent.name}-{run.name}"
            run.name = name if name not in taken else f"{name}-{i + 1}"
        taken.add(run.name)
    return runs
