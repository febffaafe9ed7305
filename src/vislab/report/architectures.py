"""The report's architectures: each model's layer table and its diagram, traced from one
forward pass at the run's input size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vislab.report.run import Run
from vislab.tasks import task_spec

if TYPE_CHECKING:
    import torch


def architecture(
    name: str,
    num_classes: int,
    size: int,
    kwargs: dict | None = None,
    device: torch.device | None = None,
) -> dict:
    """The layer table and diagram of a model built without pretrained weights, traced on
    device (default the CPU)."""
    from vislab.analysis.architecture import layer_table
    from vislab.analysis.diagram import diagram
    from vislab.models import create_model, model_doc

    model = create_model(name, num_classes=num_classes, **(kwargs or {})).to(device)
    return {
        "name": name,
        "doc": model_doc(name),
        **layer_table(model, (size, size)),
        "diagram": diagram(model, (size, size)),
    }


def _input_side(run: Run) -> int:
    """The side the run's model saw: data.image_size, else the size its checkpoint was trained
    at (images as stored), else the task's usual one."""
    if run.config["data"]["image_size"]:
        return run.config["data"]["image_size"]
    if run.folder.best.is_file():
        from vislab.infer.meta import read_meta

        size = read_meta(run.folder.best).image_size
        if size:
            return max(size)
    return task_spec(run.task).image_size


def run_architecture(run: Run, device: torch.device | None = None) -> dict[str, Any]:
    """The architecture of the model a run trained, at its input size."""
    from vislab.models import without_weights

    kwargs = without_weights(run.config["model"]["kwargs"])
    return architecture(run.model, run.num_classes, _input_side(run), kwargs, device)


def report_architectures(
    runs: list[Run],
    references: tuple[tuple[str, int, int, dict], ...] = (),
    device: torch.device | None = None,
) -> list[dict]:
    """Layer tables of references ((model, classes, input side, kwargs), drawn whether a run
    trained them or not; a run's own table wins) and of every other model a run used."""
    by_model = {r.model: r.architecture for r in runs}
    tables = [
        by_model.pop(name, None) or architecture(name, k, size, kw, device)
        for name, k, size, kw in references
    ]
    return tables + list(by_model.values())


def draw_architectures(tables: list[dict], figures: Path) -> None:
    """Each table's diagram drawn into figures, with its caption."""
    from vislab.analysis.diagram import caption
    from vislab.analysis.diagram_plot import draw

    for a in tables:
        a["figure"] = figures / f"architecture_{a['name'].replace('/', '_')}.png"  # timm/NAME
        title = f"{a['name']}: {a['total_params']:,} parameters, input {a['input']}"
        draw(a["diagram"], title, a["figure"])
        a["caption"] = caption(a["diagram"])
