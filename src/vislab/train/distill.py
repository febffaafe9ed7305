"""Knowledge distillation from a fixed teacher (model.teacher): the teacher's class
log-probabilities for every training image, computed once before training, become soft
targets the student learns beside the labels (ClassificationTask's loss, optim.distill_weight
and optim.distill_temperature).

The teacher sees each image and its mirror (their probabilities averaged), as `vislab predict
--tta` would; the student sees its augmented versions of the image (crops, flips, ...) against
the same targets, and a MixUp or CutMix batch mixes the targets as it mixes the labels. The
targets are kept in the run folder with the teacher file's SHA-256: a resumed run learns the
very same ones, and a teacher file that changed since is refused."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from vislab.config import Config
from vislab.data.batches import TensorImageDataset
from vislab.errors import VislabError
from vislab.fileio import atomic_torch_save


def load_teacher(cfg: Config) -> Teacher | None:
    """model.teacher's classifier, on the device this process trains on; None without one."""
    if cfg.model.teacher is None:
        return None
    return Teacher(Path(cfg.model.teacher), teacher_device(cfg))


def teacher_device(cfg: Config) -> torch.device:
    """The device this training process trains on, where the teacher runs too."""
    from vislab.devices import trainer_accelerator

    kind = trainer_accelerator(cfg.trainer.accelerator)
    if kind != "cuda":
        return torch.device(kind)
    rank = int(os.environ.get("LOCAL_RANK", 0))
    devices = cfg.trainer.devices
    return torch.device("cuda", devices[rank] if isinstance(devices, list) else rank)


class Teacher:
    """The classifier model.teacher names, loaded before the data is decoded (a file that is
    no classifier fails in a second)."""

    def __init__(self, path: Path, device: torch.device):
        from vislab.infer.checkpoint import load_model
        from vislab.infer.export import file_sha256

        self.path = path
        try:
            # built with random weights before its own are loaded: torch's generator is left
            # where it was, so the student starts from the weights it would without a teacher
            with torch.random.fork_rng(devices=[]):
                self.model, self.meta = load_model(path, "classification", device)
        except VislabError as e:
            raise VislabError(f"model.teacher: {e}") from None
        self.sha256 = file_sha256(path)

    def attach(
        self, train: TensorImageDataset, classes: list[str], batch_size: int, cache: Path, rank: int
    ) -> None:
        """Give the training set the teacher's (N, K) float32 log-probabilities of its images
        as targets: those in cache when the run made them from this teacher file, else
        computed (and, on rank 0, kept there). The teacher must have the run's classes, in
        index order, and have been trained at the images' size."""
        path, meta = self.path, self.meta
        if list(meta.classes) != list(classes):
            shown = ", ".join(meta.classes[:5]) + (", ..." if len(meta.classes) > 5 else "")
            raise VislabError(
                f"model.teacher: {path} classifies {meta.num_classes} classes ({shown}) and "
                f"the data holds {len(classes)} ({', '.join(classes[:5])}"
                f"{', ...' if len(classes) > 5 else ''}): a teacher must have the run's "
                "classes, in the same order"
            )
        h, w = train.size
        if meta.image_size is not None and tuple(meta.image_size) != (h, w):
            th, tw = meta.image_size
            raise VislabError(
                f"model.teacher: {path} was trained on {tw}x{th} images and the run's are "
                f"{w}x{h} (data.image_size): a teacher must take the images the run trains on"
            )
        if cache.is_file():
            saved = torch.load(cache, weights_only=True)
            if saved["sha256"] != self.sha256:
                raise VislabError(
                    f"model.teacher: {path} changed since the run started (the run's targets, "
                    f"{cache}, came from another file): put the run's teacher back, or train "
                    "afresh with another --out"
                )
            train.targets = saved["log_probs"]
            return
        t0 = time.perf_counter()
        log_probs = self._log_probs(train.images.numpy(), batch_size)
        if rank == 0:
            atomic_torch_save({"sha256": self.sha256, "log_probs": log_probs}, cache)
            agree = float((log_probs.argmax(1) == train.labels).float().mean())
            print(
                f"teacher: {meta.model} of {path}, probabilities of {len(train)} train images "
                f"in {time.perf_counter() - t0:.1f} s (its class is the label for {agree:.4f} "
                "of them)"
            )
        train.targets = log_probs

    def _log_probs(self, images, batch_size: int) -> torch.Tensor:
        from vislab.infer.forward import class_probabilities, memory_named, to_nchw
        from vislab.infer.predict import fitting_batch, predict_bytes

        h, w = images.shape[1:3]
        what = f"model.teacher {self.path} on a {w}x{h} image"
        remedy = "give a smaller teacher or data.eval_batch_size"
        n = fitting_batch(predict_bytes(h, w, self.meta), batch_size, what, remedy)
        meta = self.meta
        with memory_named(f"for model.teacher {self.path}", remedy):
            return torch.cat(
                [
                    class_probabilities(
                        self.model,
                        to_nchw(images[i : i + n]),
                        meta.mean,
                        meta.std,
                        n,
                        tta=True,
                        log=True,
                    )
                    for i in range(0, len(images), n)
                ]
            )
