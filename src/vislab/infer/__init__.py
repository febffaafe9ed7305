"""Inference: checkpoints and their metadata, the batched forward pass, prediction, export."""
