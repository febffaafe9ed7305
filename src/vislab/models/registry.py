"""A small model registry: builders register under a name, ``create_model`` builds by name."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from vislab.errors import VislabError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}
_NORMS: dict[str, tuple[list[float], list[float]]] = {}

# the per-channel statistics torchvision's ImageNet weights were trained with
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def without_weights(kwargs: dict) -> dict:
    """A builder's kwargs without ``weights``: the model then starts from weights that a
    checkpoint brings, not from ImageNet's."""
    return {k: v for k, v in kwargs.items() if k != "weights"}


def register_model(
    task: str,
    name: str | None = None,
    *,
    mean: list[float] | None = None,
    std: list[float] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder ``fn(*, num_classes, **kwargs) -> nn.Module`` under name
    (default: the function's name) for task ("classification" or "segmentation"). mean/std:
    the input normalisation its pretrained weights (``weights=...``) expect."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _BUILDERS:
            raise ValueError(f"model {key} is registered twice")
        _BUILDERS[key] = fn
        _TASKS[key] = task
        if mean is not None and std is not None:
            _NORMS[key] = (list(mean), list(std))
        return fn

    return wrap


def list_models(task: str | None = None) -> list[str]:
    return sorted(n for n in _BUILDERS if task is None or _TASKS[n] == task)


def model_task(name: str) -> str:
    _check(name)
    return _TASKS[name]


def model_doc(name: str) -> str:
    _check(name)
    return (_BUILDERS[name].__doc__ or "").strip().splitlines()[0]


def pretrained_normalization(name: str) -> tuple[list[float], list[float]] | None:
    """(mean, std) the model's pretrained weights expect, or None when it declares none."""
    _check(name)
    return _NORMS.get(name)


def _check(name: str) -> None:
    if name not in _BUILDERS:
        raise VislabError(f"unknown model {name!r}; known: {', '.join(list_models())}")


def create_model(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered model; unknown names and keyword arguments are user errors."""
    _check(name)
    try:
        return _BUILDERS[name](num_classes=num_classes, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise VislabError(f"model {name}: {e} (check model.kwargs)") from None
        raise
