"""Ensembles in the report: an ensemble's folder (`vislab train` of an ensemble recipe) read as
its members' runs, each reported as any run, and one row of the ensemble itself in its
problem's score table and a point on its budget figure: its validation score as the training
of the recipe wrote it (val_eval/metrics.json), its members' training minutes summed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vislab.errors import VislabError
from vislab.report.run import Run, read_run


@dataclass
class Ensemble:
    name: str
    path: Path
    members: list[Run]
    scores: dict[str, Any] | None  # val_eval/metrics.json; None when it was never scored
    facts: dict[str, Any] = field(default_factory=dict)  # filled by ensemble_facts


def read_ensemble(path: Path) -> Ensemble | None:
    """The ensemble whose folder path is, its members' runs named ENSEMBLE-MEMBER; None when
    path is no ensemble's folder."""
    from vislab.ensembles import folder_members

    names = folder_members(path) if Path(path).is_dir() else None
    if names is None:
        return None
    name = Path(path).name if Path(path).name not in ("", "..") else Path(path).resolve().name
    members = []
    for member in names:
        if not (Path(path) / member).is_dir():
            raise VislabError(f"{path}: its member {member} has no run folder yet")
        run = read_run(Path(path) / member)
        run.name = f"{name}-{member}"
        members.append(run)
    scored = Path(path) / "val_eval" / "metrics.json"
    scores = None
    if scored.is_file():
        try:
            scores = json.loads(scored.read_text())
        except ValueError as e:
            raise VislabError(f"{scored}: not the scores vislab writes ({e})") from None
    return Ensemble(name, Path(path), members, scores)


def ensemble_facts(ensemble: Ensemble, task: str) -> None:
    """The ensemble's row, once its members' sections have run: score (None when not scored),
    per-class IoUs and pixel accuracy (segmentation), training minutes (the members', one after
    the other; None when one's are unknown)."""
    s = ensemble.scores or {}
    score = s.get("accuracy" if task == "classification" else "miou")
    minutes = [m.facts.get("train_minutes") for m in ensemble.members]
    ensemble.facts.update(
        score=score if isinstance(score, (int, float)) and not math.isnan(score) else None,
        iou=s.get("iou") or {},
        pixel_acc=s.get("pixel_acc"),
        train_minutes=sum(minutes) if all(v is not None for v in minutes) else None,
        model=" + ".join(m.model for m in ensemble.members),
        members=", ".join(m.name for m in ensemble.members),
    )
