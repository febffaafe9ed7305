"""vislab: train, evaluate and explain image classifiers and segmenters."""

__version__ = "0.1.0"
