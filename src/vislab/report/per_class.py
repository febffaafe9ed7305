"""Each class's validation score over training: segmentation's per-class IoU of every epoch
(metrics.csv), classification's per-class accuracy at the snapshots (`vislab embed`); which
classes are learnt early and which late."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vislab.report.run import Run, Section, number


def per_class(run: Run, figures: Path) -> Section:
    """The per-class table and figure of a run, when its scores are there."""
    from vislab.report.figures import plot_per_class

    out = Section()
    if run.task == "segmentation":
        rows = [r for r in run.rows if number(r, "val_miou") is not None]
        names = [c for c in run.scored if rows and f"val_iou_{c}" in rows[0]]
        if not names:
            return out
        epochs = [int(r["epoch"]) for r in rows]
        table = {c: [number(r, f"val_iou_{c}") or 0.0 for r in rows] for c in names}
        metric = "IoU"
    else:
        steps = run.facts.get("embed", {}).get("per_class_accuracy")
        if not steps:
            if "embed" in run.facts:
                out.missing.append(f"per-class accuracy (run `vislab embed {run.path}` again)")
            return out
        epochs = [s["epoch"] for s in steps]
        table = {c: [s["accuracy"].get(c, 0.0) for s in steps] for c in steps[-1]["accuracy"]}
        metric = "accuracy"
    path = figures / f"{run.name}_per_class.png"
    colors = _colors(run, list(table))
    plot_per_class(epochs, table, metric, f"{run.name}: {metric} per class", path, colors)
    out.figures["per_class"] = path
    out.facts["per_class"] = {"metric": metric, "epochs": epochs, "table": table}
    if "best" in run.facts:
        out.text["per_class"] = _said(out.facts["per_class"])
    return out


def _colors(run: Run, names: list[str]) -> dict[str, tuple[float, float, float]] | None:
    """The spec's colour of each named class (segmentation), as matplotlib takes them."""
    if run.spec is None:
        return None
    index = {c: i for i, c in enumerate(run.spec.classes)}
    return {c: tuple(v / 255 for v in run.spec.palette[index[c]]) for c in names}


def _said(pc: dict[str, Any]) -> str:
    """The first epoch at which each class reached 90% of its last score, the first and the
    last classes to, and the weakest."""
    epochs, table, metric = pc["epochs"], pc["table"], pc["metric"]
    when = {}
    for name, values in table.items():
        if values[-1] > 0:
            reached = (e for e, v in zip(epochs, values, strict=True) if v >= 0.9 * values[-1])
            when[name] = next(reached)
    order = sorted(when, key=lambda c: (when[c], -table[c][-1]))
    weakest = min(table, key=lambda c: table[c][-1])
    n = 3 if len(order) > 6 else max(1, len(order) // 2)
    first = ", ".join(f"{c} (epoch {when[c]})" for c in order[:n])
    late = ", ".join(f"{c} (epoch {when[c]})" for c in order[::-1][:n])
    at = ", ".join(map(str, epochs)) if len(epochs) <= 5 else f"{epochs[0]} to {epochs[-1]}"
    text = (
        f"Per-class {metric} at epochs {at}. The classes that reach 90% "
        f"of their last {metric} first: {first}; the last to: {late}. The weakest class at "
        f"the end is {weakest} ({table[weakest][-1]:.3f})"
    )
    never = sorted(set(table) - set(when))
    if never:
        text += f"; never predicted right: {', '.join(never[:5])}"
    return text + "."
