"""What differs between the tasks, declared once per task: the score training keeps its best
checkpoint by, how the report names it and draws it, which analysis a run gets, how many images
`vislab predict` takes per batch (infer/predict.py holds what it writes). No torch here."""

from __future__ import annotations

from dataclasses import dataclass

from vislab.errors import VislabError


@dataclass(frozen=True)
class TaskSpec:
    name: str
    monitor: str  # the metrics.csv column of the validation score (best.ckpt maximises it)
    metric: str  # the score's name in the report
    curves: tuple[tuple[str, str], ...]  # (metrics.csv column, label) of the score panel
    analysis: str  # "embed" (features of a classifier) or "progress" (masks over snapshots)
    image_size: int  # the side the report's layer table assumes when data.image_size is unset
    num_classes: int  # the course's: the head `vislab models` builds when given none
    predict_batch: int  # images per batch of `vislab predict` by default


TASKS = {
    "classification": TaskSpec(
        name="classification",
        monitor="val_acc",
        metric="accuracy",
        curves=(("train_acc", "train accuracy"), ("val_acc", "val accuracy")),
        analysis="embed",
        image_size=32,
        num_classes=50,
        predict_batch=500,
    ),
    "segmentation": TaskSpec(
        name="segmentation",
        monitor="val_miou",
        metric="mIoU",
        curves=(("val_miou", "val mIoU"), ("val_pixel_acc", "val pixel accuracy")),
        analysis="progress",
        image_size=512,
        num_classes=7,
        predict_batch=4,
    ),
}


def task_spec(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise VislabError(f"unknown task {name!r} (known: {', '.join(TASKS)})") from None
