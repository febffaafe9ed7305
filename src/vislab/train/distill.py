"""Knowledge distillation from a fixed teacher (model.teacher): the teacher's class
probabilities for every training image, computed once before training, become soft targets
the student learns beside the labels (ClassificationTask's loss, optim.distill_weight).

The teacher sees each image and its mirror (their probabilities averaged), as `vislab predict
--tta` would; the student sees its augmented versions of the image (crops, flips, ...) against
the same targets, and a MixUp or CutMix batch mixes the targets as it mixes the labels."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from vislab.errors import VislabError


class Teacher:
    """The classifier model.teacher names, loaded before the data is decoded (a file that is
    no classifier fails in a second)."""

    def __init__(self, path: Path):
        from vislab.infer.checkpoint import load_model

        self.path = path
        try:
            # built with random weights before its own are loaded: torch's generator is left
            # where it was, so the student starts from the weights it would without a teacher
            with torch.random.fork_rng(devices=[]):
                self.model, self.meta = load_model(path, "classification")
        except VislabError as e:
            raise VislabError(f"model.teacher: {e}") from None

    def targets(
        self, images: np.ndarray, labels: np.ndarray, classes: list[str], batch_size: int
    ) -> torch.Tensor:
        """(N, K) float32 probabilities for the (N, H, W, 3) uint8 training images (labels:
        their (N,) classes, to say how often the teacher agrees), whose classes (names, in
        index order) the teacher's must be, and whose size it must have been trained at."""
        from vislab.infer.forward import class_probabilities, to_nchw
        from vislab.infer.predict import fitting_batch, predict_bytes

        path, meta = self.path, self.meta
        if list(meta.classes) != list(classes):
            shown = ", ".join(meta.classes[:5]) + (", ..." if len(meta.classes) > 5 else "")
            raise VislabError(
                f"model.teacher: {path} classifies {meta.num_classes} classes ({shown}) and "
                f"the data holds {len(classes)} ({', '.join(classes[:5])}"
                f"{', ...' if len(classes) > 5 else ''}): a teacher must have the run's "
                "classes, in the same order"
            )
        h, w = images.shape[1:3]
        if meta.image_size is not None and tuple(meta.image_size) != (h, w):
            th, tw = meta.image_size
            raise VislabError(
                f"model.teacher: {path} was trained on {tw}x{th} images and the run's are "
                f"{w}x{h} (data.image_size): a teacher must take the images the run trains on"
            )
        what = f"model.teacher {path} on a {w}x{h} image"
        n = fitting_batch(predict_bytes(h, w, meta), batch_size, what, "give a smaller teacher")
        t0 = time.perf_counter()
        probs = torch.cat(
            [
                class_probabilities(
                    self.model, to_nchw(images[i : i + n]), meta.mean, meta.std, n, tta=True
                )
                for i in range(0, len(images), n)
            ]
        )
        agree = float((probs.argmax(1) == torch.as_tensor(labels)).float().mean())
        print(
            f"teacher: {meta.model} of {path}, probabilities of {len(images)} train images in "
            f"{time.perf_counter() - t0:.1f} s (its class is the label for {agree:.4f} of them)"
        )
        return probs
