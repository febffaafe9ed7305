"""The tasks a report speaks of: its runs grouped by task and classes, each group with the
heading, the score table's columns and the class colours of the user's task.

Runs of the course's data are the course's two problems (Problem 1 and 2, with the roles of
its Model A and B and the rows of the roles no run stands for), as vislab/course/report_roles.py
declares them; every other group is named by its task and classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vislab.report.run import Run, listed


@dataclass
class Problem:
    key: str  # a file-name-safe name: p1, p2, or the task and a number
    task: str
    heading: str
    runs: list[Run]
    classes: list[str]  # the per-class columns of the score table (segmentation)
    colors: list[str]  # their colours, #rrggbb
    score_note: str  # how the score is taken, for the table's heading
    course: bool = False
    missing: list[tuple[str, str]] = field(default_factory=list)  # (role, model) without a run
    budget: tuple[Path, str] | None = None  # the score-against-minutes figure and its sentence
    ensembles: list = field(default_factory=list)  # report/ensembles.Ensemble of its runs


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _course_problems(runs: list[Run]) -> tuple[list[Problem], list[Run]]:
    """The course's two problems, when any run trained on its data, and the other runs."""
    from vislab.course import report_roles as course

    def of_course(r: Run) -> bool:
        name = r.spec.name if r.spec is not None else None
        return course.is_course_data(r.task, r.config["data"], r.classes, name)

    mine = [r for r in runs if of_course(r)]
    if not mine:
        return [], runs
    problems = []
    for key, task in (("p1", "classification"), ("p2", "segmentation")):
        group = [r for r in mine if r.task == task]
        for r in group:
            r.role = course.role(task, r.config["model"])
        problem = Problem(key, task, course.HEADINGS[task], group, [], [], "", course=True)
        if task == "segmentation":
            from vislab.course.landcover import LANDCOVER

            problem.classes = [LANDCOVER.classes[i] for i in LANDCOVER.scored]
            problem.colors = [_hex(LANDCOVER.palette[i]) for i in LANDCOVER.scored]
        problem.score_note = course.SCORE_NOTES[task]
        problem.missing = course.missing_roles({r.role for r in group}, task)
        problems.append(problem)
    return problems, [r for r in runs if not of_course(r)]


def _own_problem(key: str, runs: list[Run]) -> Problem:
    """A group of runs of one task over the same classes: named by them."""
    first = runs[0]
    heading = f"{first.task.capitalize()} of {len(first.classes)} classes ({listed(first.classes)})"
    roots = {Path(r.config["data"]["root"]).name for r in runs if r.config["data"].get("root")}
    if len(roots) == 1:
        heading += f" on {roots.pop()}"
    if first.spec is None:
        return Problem(key, first.task, heading, runs, [], [], "")
    spec = first.spec
    colors = [_hex(spec.palette[spec.classes.index(c)]) for c in first.scored]
    note = f"pooled over all pixels, those of index {spec.ignore_index} left out"
    return Problem(key, first.task, heading, runs, first.scored, colors, note)


def problems(runs: list[Run]) -> list[Problem]:
    """The report's problems: the course's first (when its data is among the runs), then one
    per task and set of classes, in the order of the runs."""
    found, rest = _course_problems(runs)
    groups: dict[tuple, list[Run]] = {}
    for r in rest:
        spec = tuple(map(str, r.spec.to_dict().values())) if r.spec else ()
        groups.setdefault((r.task, tuple(r.classes), spec), []).append(r)
    for i, group in enumerate(groups.values(), 1):
        found.append(_own_problem(f"{group[0].task}-{i}", group))
    return found


def title(found: list[Problem]) -> str:
    """The report's title: the course's, and the heading of every other problem."""
    parts = []
    if any(p.course for p in found):
        from vislab.course.report_roles import TITLE

        parts.append(TITLE)
    parts += [p.heading[0].lower() + p.heading[1:] for p in found if not p.course]
    return "Report: " + "; ".join(parts)
