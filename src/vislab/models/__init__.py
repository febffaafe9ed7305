"""Models by name. Importing this package registers every built-in model."""

from vislab.models import (  # noqa: F401  (registration side effects)
    classifiers,
    decoders,
    segmenters,
)
from vislab.models.registry import (
    check_model,
    create_model,
    list_models,
    model_doc,
    model_task,
    weights_source,
    without_weights,
)

__all__ = [
    "check_model",
    "create_model",
    "list_models",
    "model_doc",
    "model_task",
    "weights_source",
    "without_weights",
]
