"""What a budget of minutes buys: each run's validation score against its training minutes,
one figure per problem of the report."""

from __future__ import annotations

from pathlib import Path

from vislab.report.run import Run, number
from vislab.tasks import task_spec


def budget_figure(
    runs: list[Run], task: str, path: Path, ensembles: list = ()
) -> tuple[Path, str] | None:
    """The score of each run (all of one task) against its training minutes (earlier stages
    of a second stage not included), each scored ensemble (report/ensembles.py) a point at its
    members' minutes summed, and a sentence of what each reached when; None when no run has
    scores."""
    from vislab.report.figures import plot_budget

    spec = task_spec(task)
    lines, said = [], []
    for run in runs:
        minutes, scores, total = [], [], 0.0
        for r in run.rows:
            total += (number(r, "epoch_s") or 0) / 60
            if number(r, spec.monitor) is not None:
                minutes.append(total)
                scores.append(number(r, spec.monitor))
        if scores:
            lines.append((f"{run.name} ({run.model})", minutes, scores))
            best = max(range(len(scores)), key=scores.__getitem__)
            said.append(f"{run.name} {scores[best]:.4f} after {minutes[best]:.0f} min")
    if not lines:
        return None
    points = []
    for e in ensembles:
        score, minutes = e.facts["score"], e.facts["train_minutes"]
        if score is not None and minutes is not None:
            points.append((f"{e.name} (ensemble of {len(e.members)})", minutes, score))
            said.append(f"the ensemble {e.name} {score:.4f} after its members' {minutes:.0f} min")
    plot_budget(lines, spec.metric, path, points)
    return path, "Best validation score and when it was reached: " + "; ".join(said) + "."
