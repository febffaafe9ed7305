"""model.kwargs checked before any data is read (fetch.prepare): each value against the type
its builder annotates (config_keys.check_type: a bool is a bool, an int is no bool, a tuple
of the length it states) and against the range its name means (config_keys' tables:
widths, channels, hidden sizes and input sizes from 1, input sizes no larger than
data.image_size's, drop rates in [0, 1)), a decoder's encoder by name (the closest of timm's
suggested), and then the model built on the meta device, so that whatever the builder or its
library refuses is one line naming the model and its kwargs.

Not shipped to the course's environment: the submission's models are rebuilt there from a
checkpoint's kwargs, checked here when it was trained."""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from vislab.config_keys import check_range, check_type
from vislab.errors import VislabError

KEY = "model.kwargs."


def _as_list(hint: Any) -> tuple[Any, int | None]:
    """(hint with ``tuple[X, ...]`` and ``tuple[X, X]`` read as ``list[X]``, the length such a
    tuple states or None): recipes give lists, and check_type takes lists."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_as_list(a) for a in typing.get_args(hint)]
        lengths = [n for _, n in parts if n is not None]
        return typing.Union[tuple(h for h, _ in parts)], (lengths[0] if lengths else None)
    if origin is not tuple:
        return hint, None
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        return list[args[0]], None
    return list[typing.Union[args]], len(args)


def _hints(name: str) -> dict[str, Any]:
    from vislab.models.registry import builder

    fn = builder(name)
    return typing.get_type_hints(fn.func if isinstance(fn, functools.partial) else fn)


def _checked_value(key: str, value: Any, hint: Any) -> Any:
    """value checked against hint (None: not annotated) and key's range; converted where
    that is lossless (int -> float)."""
    dotted = KEY + key
    if hint is not None:
        hint, length = _as_list(hint)
        value = check_type(value, hint, dotted)
        if length is not None and isinstance(value, list) and len(value) != length:
            raise VislabError(
                f"config key {dotted}: expected a list of {length} values, got {value!r}"
            )
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            check_range(item, dotted)
    return value


def checked_kwargs(name: str, kwargs: dict) -> dict:
    """kwargs for model name, each checked and converted where lossless; a name, kwarg or
    value refused is one line naming the model."""
    from vislab.models.decoders import check_encoder
    from vislab.models.registry import check_kwargs

    check_kwargs(name, kwargs)  # the name, and kwargs the builder does not take
    hints = _hints(name)
    out = {}
    for key, value in kwargs.items():
        try:
            out[key] = _checked_value(key, value, hints.get(key))
            if key == "encoder":
                check_encoder(value)
        except VislabError as e:
            raise VislabError(f"model {name}: {e}") from None
    return out


def dry_build(name: str, kwargs: dict) -> None:
    """Build the model on the meta device (no memory, no weights loaded): what its builder or
    library refuses is one line naming the model and kwargs, before any data is read."""
    import torch

    from vislab.models.registry import create_model, without_weights

    try:
        with torch.device("meta"):
            create_model(name, num_classes=2, **without_weights(kwargs))
    except VislabError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VislabError(f"model {name} with model.kwargs {kwargs}: {first}") from None
