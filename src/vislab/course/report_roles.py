"""The course's part of the report: its two problems, the roles of its models (Model A, Model B
and the CPU models that stand in for Model B), and the reference architectures its report
draws even when they were never trained.

The generic report (vislab/report/problems.py) asks `is_course_data` of every run; only runs of
the course's data get these headings, roles and drawings. No torch here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TITLE = "image classification and land-cover segmentation"
HEADINGS = {
    "classification": "Problem 1: image classification",
    "segmentation": "Problem 2: land-cover segmentation",
}
SCORE_NOTES = {
    "classification": "",
    "segmentation": "the course's pooled mIoU over classes 0-5",
}
REPORT_MODELS = {
    "classification": {"model_a": "Model A", "torchvision/resnext101_64x4d": "Model B"},
    "segmentation": {"fcn32s_vgg16": "Model A", "deeplabv3_resnet50": "Model B"},
}
# Models that train on 2 CPU cores in place of the report's Model B (configs/p1_cpu.yaml and
# p2_cpu.yaml from scratch, p1_lite.yaml and p2_lite.yaml fine-tuned from ImageNet), and any
# timm or torchvision classifier or encoder x decoder segmenter; the report's own Model B row
# stays "missing".
CPU_STAND_INS = {"resnet9": "ResNet-9", "lraspp_mobilenet_v3": "LR-ASPP MobileNetV3"}
DECODERS = {"fpn": "FPN", "unet": "U-Net", "deeplabv3plus": "DeepLabV3+"}
# (model, classes, input side, kwargs) of the course report's four models, drawn whether
# trained or not
REFERENCE_ARCHITECTURES = (
    ("model_a", 50, 32, {}),
    ("torchvision/resnext101_64x4d", 50, 32, {"input_size": 224}),
    ("fcn32s_vgg16", 7, 512, {}),
    ("deeplabv3_resnet50", 7, 512, {}),
)
COURSE_CLASSIFICATION = ("train_50", "val_50")  # the course's p1_data folders
NUM_COURSE_CLASSES = 50


def is_course_data(
    task: str, data: dict[str, Any], classes: list[str], spec_name: str | None
) -> bool:
    """Whether a run trained on the course's data: classification on its train_50/ + val_50/
    folders or its 50 integer-named classes; segmentation with the land-cover spec."""
    if task == "segmentation":
        return spec_name == "landcover"
    folders = (Path(data.get("train") or "").name, Path(data.get("val") or "").name)
    numbered = classes == [str(i) for i in range(NUM_COURSE_CLASSES)]
    return folders == COURSE_CLASSIFICATION or numbered


def role(task: str, model: dict[str, Any]) -> str:
    """'Model A', 'Model B', 'CPU stand-in for Model B, fine-tuned from ImageNet
    (EfficientNet-Lite0)', or 'other'; a second stage names its first."""
    found = REPORT_MODELS[task].get(model["name"])
    net = _stand_in(model["name"], model["kwargs"])
    if found is None and net is not None:
        if model.get("init"):  # the start is the first stage's, named below
            found = f"CPU stand-in for Model B ({net})"
        else:
            start = "fine-tuned from ImageNet" if model["kwargs"].get("weights") else "from scratch"
            found = f"CPU stand-in for Model B, {start} ({net})"
    found = found or "other"
    if model.get("init"):
        found += f", second stage of {model['init']}"
    return found


def _stand_in(name: str, kwargs: dict[str, Any]) -> str | None:
    """The network a stand-in's role names (``FPN over tf_efficientnet_lite0``), or None."""
    if name in CPU_STAND_INS:
        return CPU_STAND_INS[name]
    if name in DECODERS:
        return f"{DECODERS[name]} over {str(kwargs.get('encoder', '')).split('/')[-1]}"
    if name.startswith(("timm/", "torchvision/")):
        return name.split("/", 1)[1]
    return None


def missing_roles(roles: set[str], task: str) -> list[tuple[str, str]]:
    """(role, model) of the report's models of task that none of roles stands for."""
    return [(r, m) for m, r in REPORT_MODELS[task].items() if r not in roles]
