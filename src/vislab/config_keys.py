"""Each recipe value on its own: its type (converted where lossless), its range, its choices,
and which task reads it. `build` makes a dataclass from a mapping with these checks, naming the
dotted key of anything refused; the checks across keys live with the dataclasses (config.py).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from vislab.errors import VislabError
from vislab.infer.meta import MAX_CLASSES, max_pixels
from vislab.tasks import TASKS

CHOICES = {
    "task": tuple(TASKS),
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("constant", "cosine", "onecycle"),
    "trainer.precision": ("32-true", "bf16-mixed", "16-mixed"),
    "data.mask_format": ("auto", "rgb", "index"),
    "data.store": ("auto", "memory", "disk"),
    # the policies of data/augment.py's AUTO_AUGMENT (not imported here: config stays torch-free)
    "data.auto_augment": (
        None,
        "trivialaugment",
        "randaugment",
        "autoaugment-imagenet",
        "autoaugment-cifar10",
    ),
}


# keys that only one task reads: set in a recipe of the other task, they are refused, not ignored
TASK_ONLY = {
    "data.val_labels": "classification",
    "data.crop_padding": "classification",
    "data.max_per_class": "classification",
    "data.auto_augment": "classification",
    "data.random_erasing": "classification",
    "model.teacher": "classification",
    "data.crop_size": "segmentation",
    "data.vflip": "segmentation",
    "data.rot90": "segmentation",
    "data.limit": "segmentation",
    "data.spec": "segmentation",
    "data.palette": "segmentation",
    "data.ignore_index": "segmentation",
    "data.mask_format": "segmentation",
}

# the smallest value each number may take (None passes where the key allows it); a float
# must also be finite
MINIMUM = {
    "seed": 0,
    "data.image_size": 1,
    "data.max_per_class": 1,
    "data.limit": 1,
    "data.batch_size": 1,
    "data.eval_batch_size": 1,
    "data.crop_padding": 0,
    "data.random_erasing": 0.0,
    "optim.distill_weight": 0.0,
    "optim.distill_temperature": 0.0,
    "data.crop_size": 1,
    "data.ignore_index": 0,
    "model.num_classes": 1,
    "optim.lr": 0.0,
    "optim.momentum": 0.0,
    "optim.weight_decay": 0.0,
    "optim.label_smoothing": 0.0,
    "trainer.epochs": 1,
    "trainer.ema": 0.0,
    "trainer.threads": 1,
    "trainer.num_nodes": 1,
    # model.kwargs by what the name means, in whichever builder takes it
    "model.kwargs.in_size": 4,  # model_a: fc1 is sized for (in_size // 4) ** 2 cells
    "model.kwargs.input_size": 1,  # timm's and torchvision's: inputs resized to it
    "model.kwargs.width": 1,
    "model.kwargs.channels": 1,
    "model.kwargs.hidden": 1,
    "model.kwargs.frozen_stages": 0,  # the largest: the network's levels (library)
    "model.kwargs.drop_rate": 0.0,
    "model.kwargs.drop_path_rate": 0.0,
    "model.kwargs.bn_momentum": 0.0,
}


# the largest: numpy's seeds; image sides whose square passes what Pillow decodes (13,377:
# one image of 100,000 x 100,000 would take 30 GB); the 8-bit masks' values; the classes a
# model can hold (a segmenter fewer: checked with its data set spec)
MAXIMUM = {
    "seed": 2**32 - 1,
    "data.image_size": math.isqrt(max_pixels()),
    "data.crop_size": math.isqrt(max_pixels()),
    "data.ignore_index": 255,
    "model.num_classes": max(MAX_CLASSES.values()),
    "model.kwargs.in_size": math.isqrt(max_pixels()),
    "model.kwargs.input_size": math.isqrt(max_pixels()),
    "model.kwargs.bn_momentum": 1.0,
    "data.random_erasing": 1.0,
    "optim.distill_weight": 1.0,
}

# the values each number must stay below, with why
BELOW = {
    "optim.momentum": (
        1.0,
        "SGD's velocity keeps this share of itself each step: at 1 or more past gradients "
        "never fade and the steps grow without bound",
    ),
    "trainer.ema": (1.0, "the average keeps this share of itself each step: at 1 it never moves"),
    "model.kwargs.drop_rate": (1.0, "a rate of dropping: at 1 everything is dropped"),
    "model.kwargs.drop_path_rate": (1.0, "a rate of dropping: at 1 every block is dropped"),
}


def check_range(value: Any, key: str) -> None:
    """Any float, alone or in a list, is finite; a number of MINIMUM, MAXIMUM or BELOW is in
    its range."""
    items = value if isinstance(value, list) else [value]
    for i, v in enumerate(items):
        if isinstance(v, float) and not math.isfinite(v):
            where = f"{key}[{i}]" if isinstance(value, list) else key
            raise VislabError(f"config key {where}: {v} is not a finite number")
    low = MINIMUM.get(key)
    if low is None or value is None:
        return
    if value < low:
        raise VislabError(f"config key {key}: {value} must be >= {low}")
    high = MAXIMUM.get(key)
    if high is not None and value > high:
        raise VislabError(f"config key {key}: {value} must be <= {high}")
    below, why = BELOW.get(key, (None, ""))
    if below is not None and value >= below:
        raise VislabError(f"config key {key}: {value} must be below {below:g} ({why})")


def check_type(value: Any, hint: Any, key: str) -> Any:
    """Return value converted to hint where that is lossless (int -> float), else raise."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_type(value, arg, key)
            except VislabError as e:
                errors.append(str(e))
        raise VislabError(errors[0] if errors else f"config key {key}: got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise VislabError(f"config key {key}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise VislabError(f"config key {key}: expected a mapping, got {value!r}")
        _check_names(value, key)
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-4" as a string
            return float(value)
        except ValueError:
            pass
    if hint in (int, float) and isinstance(value, bool):
        raise VislabError(f"config key {key}: expected {hint.__name__}, got {value!r}")
    if not isinstance(value, hint):
        raise VislabError(f"config key {key}: expected {hint.__name__}, got {value!r}")
    return value


def _check_names(values: dict, key: str) -> None:
    """The keys of a mapping are names (YAML also reads 1:, true: or null: as keys)."""
    odd = next((k for k in values if not isinstance(k, str)), None)
    if odd is not None:
        where = f"config key {key}" if key else "the recipe"
        raise VislabError(
            f"{where}: the key {odd!r} is not a name (YAML reads it as "
            f"{type(odd).__name__}; quote it to mean the text)"
        )


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(values, dict):
        raise VislabError(
            f"config key {prefix.rstrip('.') or '(top)'}: expected a mapping, got {values!r}"
        )
    _check_names(values, prefix.rstrip("."))
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        keys = ", ".join(prefix + k for k in unknown)
        raise VislabError(f"unknown config key(s): {keys} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            # an empty section (None) is the defaults; any other value must be a mapping
            kwargs[name] = build(hint, {} if value is None else value, key + ".")
        else:
            kwargs[name] = check_type(value, hint, key)
            check_range(kwargs[name], key)
            if key in CHOICES and kwargs[name] not in CHOICES[key]:
                raise VislabError(
                    f"config key {key}: {value!r} is not one of "
                    + ", ".join("null" if c is None else c for c in CHOICES[key])
                )
    return cls(**kwargs)
