"""A run as the report reads it from its folder: the resolved config, metrics.csv, the class
names and (segmentation) the data set spec; and the Section that each part of the report adds
to it (its facts, figures, explanations and what it misses).

Every other module of the report imports this one; this one imports none of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vislab.data.spec import DatasetSpec
from vislab.errors import VislabError
from vislab.run_folder import RunFolder


@dataclass
class Section:
    """What one part of the report found about a run."""

    facts: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


@dataclass
class Run:
    name: str
    path: Path
    task: str
    model: str
    config: dict[str, Any]
    rows: list[dict[str, str]]
    classes: list[str]  # names in index order
    spec: DatasetSpec | None  # segmentation: the data set's spec
    role: str | None = None  # the course's runs: Model A, Model B, a CPU stand-in
    figures: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] | None = None
    text: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def num_classes(self) -> int:
        return self.config["model"]["num_classes"] or len(self.classes)

    @property
    def scored(self) -> list[str]:
        """The classes its score averages: the spec's scored ones, else every class."""
        if self.spec is None:
            return list(self.classes)
        return [self.spec.classes[i] for i in self.spec.scored]

    def add(self, section: Section) -> None:
        self.facts.update(section.facts)
        self.figures.update(section.figures)
        self.text.update(section.text)
        self.missing.extend(section.missing)


def number(row: dict[str, str], key: str) -> float | None:
    """A metrics.csv cell as a number; None when empty or nan."""
    v = row.get(key)
    return float(v) if v not in (None, "", "nan") else None


def listed(names: list[str], limit: int = 12) -> str:
    """Names joined by commas, the first limit of them when there are more."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def read_run(path: Path) -> Run:
    """The run record of a run folder (an error when it is none)."""
    folder = RunFolder(path)
    cfg = folder.config().to_dict()  # checked as training checks it; the templates read a dict
    task = cfg["task"]
    spec = folder.spec() if task == "segmentation" else None
    classes = spec.classes if spec is not None else _class_names(folder, cfg)
    name = folder.path.name
    if name in ("", ".."):  # `vislab report .` or runs/..: the folder's own name
        name = folder.path.resolve().name or "run"
    return Run(name, folder.path, task, cfg["model"]["name"], cfg, folder.metrics(), classes, spec)


def _class_names(folder: RunFolder, cfg: dict[str, Any]) -> list[str]:
    """A classifier's class names as training counted them (class_balance.json), else the
    recipe's data.classes, else those its checkpoint's metadata names (a tree's folders, a
    flat folder's label numbers), else the label numbers of model.num_classes; a run that
    names them nowhere is an error, not a run of 0 classes."""
    from vislab.infer.meta import read_meta

    counted = folder.class_balance()
    if counted:
        return [str(c) for c in counted["classes"]]
    if cfg["data"].get("classes"):
        return list(cfg["data"]["classes"])
    ckpt = next((c for c in (folder.best, folder.last, *folder.snapshots()) if c.is_file()), None)
    if ckpt is not None:
        return [str(c) for c in read_meta(ckpt).classes]
    if cfg["model"]["num_classes"]:
        return [str(i) for i in range(cfg["model"]["num_classes"])]
    raise VislabError(
        f"{folder.path}: its class names are unknown (no class_balance.json, no checkpoint, "
        "and its recipe sets neither data.classes nor model.num_classes); report a run that "
        "has trained at least one epoch"
    )


def stage_minutes(run: Run) -> tuple[float, bool, list[str]]:
    """Training minutes of the run plus those of the runs its weights came from (model.init:
    <run>/checkpoints/<name>.ckpt), whether every such stage was found, and what was not."""
    minutes, stage, seen = 0.0, run, {run.path.resolve()}
    while True:
        minutes += sum(number(r, "epoch_s") or 0 for r in stage.rows) / 60
        init = stage.config["model"].get("init")
        if not init:
            return minutes, True, []
        folder = Path(init).resolve().parents[1]
        if folder in seen:
            return minutes, False, [f"the first stage: model.init of {folder} leads back to itself"]
        if not RunFolder(folder).exists():
            return minutes, False, [f"the run folder of {init} (train time leaves that stage out)"]
        seen.add(folder)
        stage = read_run(folder)


def distinct_names(runs: list[Run]) -> list[Run]:
    """Each run a label of its own, which its figures' file names take too: runs whose folders
    share a name (a/p2, b/p2) are named with their parent folder too (a-p2, b-p2), and a name
    still shared (a/p2 given twice, or a/p2 beside a folder named a-p2) gets a number (a-p2-2).
    Names differ in more than case, so that no two figures share a file on any disk."""

    def key(name: str) -> str:
        return name.casefold()

    counts = Counter(key(run.name) for run in runs)
    wanted = [
        f"{run.path.absolute().parent.name}-{run.name}" if counts[key(run.name)] > 1 else run.name
        for run in runs
    ]
    shared = Counter(key(w) for w in wanted)
    taken = {key(w) for w in wanted if shared[key(w)] == 1}
    # a name shared still: a folder of that very name keeps it, the runs renamed get numbers
    order = sorted(
        (i for i, w in enumerate(wanted) if shared[key(w)] > 1),
        key=lambda i: (wanted[i] != runs[i].name, i),
    )
    for i in order:
        name, n = wanted[i], 1
        while key(name) in taken:
            n += 1
            name = f"{wanted[i]}-{n}"
        taken.add(key(name))
        wanted[i] = name
    for run, name in zip(runs, wanted, strict=True):
        run.name = name
    return runs
