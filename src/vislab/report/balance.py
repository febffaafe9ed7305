"""Each class's share of the train and validation sets as training counted them
(RUN/class_balance.json), the loss weights optim.class_weights: balanced would give them
(segmentation), and the run's last score of each class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vislab.report.run import Run, Section


def balance(run: Run, figures: Path) -> Section:
    """The class shares of a run and their figure, or what is missing."""
    from vislab.report.figures import plot_balance

    out = Section()
    counted = run.folder.class_balance()
    if counted is None:
        out.missing.append("class balance (the run folder holds no class_balance.json)")
        return out
    names = [str(c) for c in counted["classes"]]
    # segmentation: the scored classes (the course's leave out unknown); their counts by index
    keep = [names.index(c) for c in run.scored if c in names] if run.spec else range(len(names))
    classes = [names[i] for i in keep]
    shares = {}
    for part in ("train", "val"):
        total = max(1, sum(counted[part]))
        shares[part] = [counted[part][i] / total for i in keep]
    pc = run.facts.get("per_class")
    final = {c: v[-1] for c, v in pc["table"].items()} if pc else None
    path = figures / f"{run.name}_balance.png"
    plot_balance(classes, shares, final, pc["metric"] if pc else "", path)
    out.figures["balance"] = path
    facts: dict[str, Any] = {
        "classes": classes,
        "unit": counted["unit"],
        "shares": shares,
        "final": final,
    }
    if run.spec is not None:
        from vislab.data.tiles import balanced_weights

        weights = balanced_weights(counted["train"], run.spec.scored)  # as training weighs
        facts["balanced_weights"] = [weights[i] for i in keep]
    out.facts["balance"] = facts
    if "best" in run.facts:
        out.text["balance"] = _said(facts)
    return out


def _said(b: dict[str, Any]) -> str:
    """The smallest and largest classes by train share, and what they scored at the end."""
    train, val, classes, final = b["shares"]["train"], b["shares"]["val"], b["classes"], b["final"]
    order = sorted(range(len(classes)), key=lambda i: train[i])

    def said(i: int) -> str:
        c = classes[i]
        score = f", last score {final[c]:.3f}" if final and c in final else ""
        return f"{c}, {train[i]:.1%} of the train {b['unit']} ({val[i]:.1%} of validation{score})"

    text = f"Smallest class: {said(order[0])}; largest: {said(order[-1])}."
    if "balanced_weights" in b:
        named = ", ".join(f"{c} {w:g}" for c, w in zip(classes, b["balanced_weights"], strict=True))
        text += f" optim.class_weights: balanced would weigh the loss {named}."
    return text
