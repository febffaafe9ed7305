"""Models by name: vislab's own builders (``register_model``) and any classifier of timm
(``timm/NAME``, or a bare timm name no vislab model has) or torchvision
(``torchvision/NAME``); ``create_model`` builds either."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch.nn as nn

from vislab.errors import VislabError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}
_WEIGHTS: dict[str, Callable[[dict], object]] = {}
TIMM, TORCHVISION = "timm/", "torchvision/"


def without_weights(kwargs: dict) -> dict:
    """A builder's kwargs without ``weights``: the model then starts from weights that a
    checkpoint brings, not from ImageNet's."""
    return {k: v for k, v in kwargs.items() if k != "weights"}


def register_model(
    task: str, name: str | None = None, *, weights: Callable[[dict], object] | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder ``fn(*, num_classes, **kwargs) -> nn.Module`` under name
    (default: the function's name) for task ("classification" or "segmentation"). weights:
    ``fn(kwargs)`` -> the source of the pretrained weights those kwargs ask for (see
    vislab.models.fetch), or None."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _BUILDERS:
            raise ValueError(f"model {key} is registered twice")
        _BUILDERS[key], _TASKS[key] = fn, task
        if weights is not None:
            _WEIGHTS[key] = weights
        return fn

    return wrap


def list_models(task: str | None = None) -> list[str]:
    """vislab's own models (timm's and torchvision's: ``vislab models --search``)."""
    return sorted(n for n in _BUILDERS if task is None or _TASKS[n] == task)


def library_name(name: str) -> tuple[str, str] | None:
    """("timm" | "torchvision", the library's name) for a name vislab does not register."""
    if name in _BUILDERS:
        return None
    if name.startswith(TIMM):
        return "timm", name[len(TIMM) :]
    if name.startswith(TORCHVISION):
        return "torchvision", name[len(TORCHVISION) :]
    import timm

    return ("timm", name) if timm.is_model(name) else None


def closest(name: str, names: list[str], prefix: str = "") -> str:
    """ ", did you mean A or B?" for the names most like name (difflib's ratio, letter case
    aside), or ""."""
    import difflib

    by_lower: dict[str, str] = {}
    for n in names:
        by_lower.setdefault(n.lower(), n)
    near = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.75)
    return f", did you mean {' or '.join(prefix + by_lower[n] for n in near)}?" if near else ""


def check_model(name: str) -> None:
    """An unknown name is one line, before anything is built or read."""
    lib = library_name(name)
    if lib is None and name not in _BUILDERS:
        import timm

        near = closest(name, [*list_models(), *timm.list_models()])
        raise VislabError(
            f"unknown model {name!r}{near}; vislab's: {', '.join(list_models())}, or "
            "timm/NAME, torchvision/NAME (vislab models --search TEXT lists them)"
        )
    if lib is None:
        return
    if lib[0] == "timm":
        import timm

        if not timm.is_model(lib[1]):
            near = closest(lib[1], timm.list_models(), TIMM)
            raise VislabError(f"unknown model {name}: timm has no model {lib[1]!r}{near}")
    else:
        from vislab.models.library import torchvision_builder

        torchvision_builder(lib[1])


def model_task(name: str) -> str:
    check_model(name)
    return _TASKS.get(name, "classification")


def model_doc(name: str) -> str:
    check_model(name)
    lib = library_name(name)
    if lib is not None:
        return f"{lib[0]}'s {lib[1]}, input resized on the fly to model.kwargs.input_size"
    return (_BUILDERS[name].__doc__ or "").strip().splitlines()[0]


def weights_source(name: str, kwargs: dict):
    """Where the pretrained weights that kwargs ask for come from (TimmWeights or
    TorchvisionWeights of vislab.models.fetch), or None without weights."""
    check_model(name)
    weights = kwargs.get("weights")
    if weights is None:
        return None
    if not isinstance(weights, str):
        raise VislabError(f"model.kwargs.weights must be a name or a path, got {weights!r}")
    lib = library_name(name)
    if lib is None:
        source = _WEIGHTS.get(name)
        return source(kwargs) if source is not None else None
    from vislab.models import fetch

    kind, arch = lib
    if kind == "timm":
        return fetch.TimmWeights(arch, weights)
    return fetch.TorchvisionWeights(fetch.torchvision_enum(arch), weights, name)


def builder(name: str) -> Callable[..., nn.Module]:
    """The function that builds name (timm's and torchvision's wrapper, its name bound)."""
    check_model(name)
    lib = library_name(name)
    if lib is None:
        return _BUILDERS[name]
    from vislab.models import library

    kind, arch = lib
    maker = library.timm_classifier if kind == "timm" else library.torchvision_classifier
    return functools.partial(maker, arch)


def check_kwargs(name: str, kwargs: dict) -> None:
    """model.kwargs the builder does not take, or a required one left out: one line."""
    try:
        inspect.signature(builder(name)).bind(num_classes=1, **kwargs)
    except TypeError as e:
        raise VislabError(f"model {name}: {e} (check model.kwargs)") from None


def create_model(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """Build a model by name; unknown names and keyword arguments are user errors."""
    check_kwargs(name, kwargs)
    return builder(name)(num_classes=num_classes, **kwargs)
