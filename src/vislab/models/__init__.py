"""Models behind one registry. Importing this package registers every built-in model."""

from vislab.models import classifiers, resnext, segmenters  # noqa: F401  (registration side effects)
from vislab.models.registry import create_model, list_models, model_doc, model_task

__all__ = ["create_model", "list_models", "model_doc", "model_task"]
