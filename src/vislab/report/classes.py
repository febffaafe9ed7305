"""The report's view of each class: its score over training and its share of the data."""

from __future__ import annotations

from pathlib import Path

from vislab.report.build import Run, number
from vislab.run_folder import RunFolder


def per_class(run: Run, figures: Path) -> None:
    """Each class's validation score over training: segmentation's per-class IoU of every
    epoch (metrics.csv), classification's per-class accuracy at the snapshots (vislab embed)."""
    from vislab.report.figures import plot_per_class

    if run.task == "segmentation":
        from vislab.course.landcover import CLASSES, NUM_SCORED

        rows = [r for r in run.rows if number(r, "val_miou") is not None]
        names = [c for c in CLASSES[:NUM_SCORED] if rows and f"val_iou_{c}" in rows[0]]
        if not names:
            return
        epochs = [int(r["epoch"]) for r in rows]
        table = {c: [number(r, f"val_iou_{c}") or 0.0 for r in rows] for c in names}
        metric = "IoU"
    else:
        steps = run.facts.get("embed", {}).get("per_class_accuracy")
        if not steps:
            if "embed" in run.facts:
                run.missing.append(f"per-class accuracy (run `vislab embed {run.path}` again)")
            return
        epochs = [s["epoch"] for s in steps]
        table = {c: [s["accuracy"].get(c, 0.0) for s in steps] for c in steps[-1]["accuracy"]}
        metric = "accuracy"
    path = figures / f"{run.name}_per_class.png"
    plot_per_class(epochs, table, metric, f"{run.name}: {metric} per class", path)
    run.figures["per_class"] = path
    run.facts["per_class"] = {"metric": metric, "epochs": epochs, "table": table}


def balance(run: Run, figures: Path) -> None:
    """Each class's share of the train and validation sets as training counted them, the
    weights optim.class_weights: balanced gives them (segmentation), and the last score."""
    from vislab.report.figures import plot_balance

    counted = RunFolder(run.path).class_balance()
    if counted is None:
        run.missing.append("class balance (the run folder holds no class_balance.json)")
        return
    classes = counted["classes"]
    if run.task == "segmentation":  # the course's scored classes
        from vislab.course.landcover import NUM_SCORED

        classes = classes[:NUM_SCORED]
    shares = {}
    for name in ("train", "val"):
        counts = counted[name][: len(classes)]
        shares[name] = [n / max(1, sum(counted[name])) for n in counts]
    pc = run.facts.get("per_class")
    final = {c: v[-1] for c, v in pc["table"].items()} if pc else None
    path = figures / f"{run.name}_balance.png"
    plot_balance(classes, shares, final, pc["metric"] if pc else "", path)
    run.figures["balance"] = path
    facts = {"classes": classes, "unit": counted["unit"], "shares": shares, "final": final}
    if run.task == "segmentation":
        from vislab.data.tiles import balanced_weights

        facts["balanced_weights"] = balanced_weights(counted["train"])[: len(classes)]
    run.facts["balance"] = facts


def class_names(run: Run, k: int) -> list[str]:
    """The names of a run's k classes as training counted them (class_balance.json), else
    the label numbers."""
    counted = RunFolder(run.path).class_balance()
    if counted and len(counted["classes"]) == k:
        return [str(c) for c in counted["classes"]]
    return [str(i) for i in range(k)]
