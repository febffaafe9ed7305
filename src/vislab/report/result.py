"""A run's result: its best and last validation score, its training minutes, its learning
curves, and its settings as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vislab.report.run import Run, Section, listed, number, stage_minutes
from vislab.tasks import task_spec


def result(run: Run, figures: Path) -> Section:
    """The score facts, the curves figure and the sentence that says them."""
    spec = task_spec(run.task)
    out = Section()
    if run.rows:
        curves = figures / f"{run.name}_curves.png"
        from vislab.report.figures import plot_curves

        plot_curves(run.rows, spec.curves, f"{run.name} ({run.model})", curves)
        out.figures["curves"] = curves
    scored = [r for r in run.rows if number(r, spec.monitor) is not None]
    if not scored:
        out.missing.append("metrics.csv with validation scores")
        return out
    best = max(scored, key=lambda r: number(r, spec.monitor))
    minutes, all_stages, missing = stage_minutes(run)
    out.missing += missing
    f = out.facts
    f.update(
        metric=spec.metric,
        best=number(best, spec.monitor),
        best_epoch=int(best["epoch"]),
        final=number(scored[-1], spec.monitor),
        epochs_done=int(scored[-1]["epoch"]),
        epochs_planned=run.config["trainer"]["epochs"],
        train_minutes=minutes,  # earlier stages included, when found
        all_stages=all_stages,
        best_row=best,
    )
    if run.task == "classification" and number(scored[-1], "train_acc") is not None:
        f["final_train_acc"] = number(scored[-1], "train_acc")
    out.text["result"] = _said(run, f)
    return out


def _stages_said(run: Run, all_stages: bool) -> str:
    init = run.config["model"].get("init")
    if not init:
        return "."
    if all_stages:
        return f", with the run its weights came from ({init})."
    return f" in this stage alone; its weights came from {init}, whose run was not found."


def _said(run: Run, f: dict[str, Any]) -> str:
    t = (
        f"{run.name} ({run.model}) reached its best validation {f['metric']} of {f['best']:.4f} "
        f"at epoch {f['best_epoch']} of {f['epochs_done']} (planned {f['epochs_planned']}); "
        f"the last epoch scored {f['final']:.4f}. Training took {f['train_minutes']:.1f} min"
        + _stages_said(run, f["all_stages"])
    )
    if "final_train_acc" in f:
        gap = f["final_train_acc"] - f["final"]
        t += f" Train accuracy ended at {f['final_train_acc']:.4f}, {gap:.2f} above validation" + (
            ": the network memorises the training set." if gap > 0.2 else "."
        )
    return t


def _augmentation(d: dict[str, Any]) -> str:
    aug = [
        name
        for name, on in (
            (f"random crop (pad {d.get('crop_padding')})", d.get("crop_padding")),
            (f"random {d.get('crop_size')} crops", d.get("crop_size")),
            ("horizontal flips", d.get("hflip")),
            (f"{d.get('auto_augment')} per image", d.get("auto_augment")),
            (f"random erasing (p {d.get('random_erasing')})", d.get("random_erasing")),
            ("vertical flips", d.get("vflip")),
            ("90-degree rotations", d.get("rot90")),
            (f"MixUp (alpha {d.get('mixup')})", d.get("mixup")),
            (f"CutMix (alpha {d.get('cutmix')})", d.get("cutmix")),
        )
        if on
    ]
    return ", ".join(aug) or "none"


def details(run: Run) -> list[tuple[str, str]]:
    """Implementation details, read from the resolved config."""
    c, d, o, t = run.config, run.config["data"], run.config["optim"], run.config["trainer"]
    opt = f"{o['name']} lr {o['lr']}, weight decay {o['weight_decay']}"
    if o["name"] == "sgd":
        opt += f", momentum {o['momentum']}"
    size = d.get("image_size")
    loss = "cross-entropy" + (
        f", label smoothing {o['label_smoothing']}" if o.get("label_smoothing") else ""
    )
    teacher = c["model"].get("teacher")
    if teacher:
        w = o.get("distill_weight")
        loss += f"; {w} of it against the probabilities of the teacher {teacher}"
        if o.get("distill_temperature", 1.0) != 1.0:
            loss += f" at temperature {o['distill_temperature']}"
    if run.spec is not None and run.spec.name is None:  # a declared spec's ignore pixels
        loss += f", pixels of index {run.spec.ignore_index} ignored"
    return [
        ("model", f"{c['model']['name']} {c['model'].get('kwargs') or ''}".strip()),
        ("classes", f"{len(run.classes)}: {listed(run.classes)}"),
        ("optimizer", opt),
        ("schedule", o["schedule"]),
        ("loss", loss),
        ("epochs, batch size", f"{t['epochs']}, {d['batch_size']}"),
        ("input", f"{size}x{size}" if size else "as stored"),
        ("augmentation", _augmentation(d)),
        ("precision", f"{t['precision']}" + (", channels_last" if t.get("channels_last") else "")),
        ("weights", f"moving average, decay {t['ema']}" if t.get("ema") else "as trained"),
        ("seed", str(c["seed"])),
    ]
