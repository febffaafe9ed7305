"""Models behind one registry. Importing this package registers every built-in model."""

from vislab.models import (  # noqa: F401  (registration side effects)
    classifiers,
    lite,
    resnext,
    segmenters,
)
from vislab.models.registry import (
    create_model,
    list_models,
    model_doc,
    model_task,
    pretrained_normalization,
    without_weights,
)

__all__ = [
    "create_model",
    "list_models",
    "model_doc",
    "model_task",
    "pretrained_normalization",
    "without_weights",
]
