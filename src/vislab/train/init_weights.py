"""model.init: the weights of an earlier run's checkpoint a run starts from (a second stage)."""

from __future__ import annotations

from pathlib import Path

from vislab.config import Config
from vislab.errors import VislabError
from vislab.infer.meta import ModelMeta


def init_weights(cfg: Config) -> tuple[dict | None, ModelMeta | None]:
    """(state dict, meta) of the checkpoint model.init names, loaded into the recipe's model
    once to check that they fit; (None, None) without model.init."""
    if cfg.model.init is None:
        return None, None
    from vislab.infer.checkpoint import load_model
    from vislab.models import create_model

    path = Path(cfg.model.init)
    if path.suffix == ".onnx":
        raise VislabError(f"model.init: {path} is an ONNX file; give its run's .ckpt instead")
    try:
        model, meta = load_model(path, cfg.task)
    except VislabError as e:
        raise VislabError(f"model.init: {e}") from None
    m = cfg.model
    # a recipe that leaves the number to the data is checked against it once it is read
    k = cfg.declared_num_classes() or meta.num_classes
    if (meta.model, meta.num_classes) != (m.name, k):
        raise VislabError(
            f"model.init: {path} holds {meta.model} with {meta.num_classes} classes; "
            f"the recipe trains {m.name} with {k}"
        )
    size = meta.model_kwargs.get("input_size")
    if size is not None and m.kwargs.get("input_size") is None:
        # the size came from ImageNet weights the recipe's model.init drops (without_weights)
        raise VislabError(
            f"model.init: {path} was trained with inputs resized to {size} "
            "(its model.kwargs.input_size) and the recipe sets no model.kwargs.input_size, so "
            f"this run would train on the images' own size: set model.kwargs.input_size "
            f"({size} to go on at the same size)"
        )
    state = model.state_dict()
    try:
        create_model(m.name, num_classes=k, **m.kwargs).load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[-1].strip()
        raise VislabError(
            f"model.init: the weights of {path} do not fit the recipe's {m.name} "
            f"(model.kwargs {dict(m.kwargs)} against {meta.model_kwargs}): {first}"
        ) from None
    return state, meta
