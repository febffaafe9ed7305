"""Callbacks that write the run folder (per-epoch metrics, snapshot checkpoints) and keep the
weights' moving average."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.plugins import TorchCheckpointIO
from torch import Tensor

from vislab.fileio import atomic_torch_save
from vislab.infer.meta import META_KEY
from vislab.run_folder import RunFolder


class EpochMetricsCSV(L.Callback):
    """One row per epoch in <run>/metrics.csv: losses, accuracies, lr, time, throughput.

    The rows also live in the checkpoint (callback state), so a resumed run rewrites exactly
    the history up to the checkpoint and appends from there.
    """

    def __init__(self, run: RunFolder, echo: bool = False):
        self.run = run
        self.echo = echo  # print one line per epoch (for logs, where no progress bar runs)
        self.rows: list[dict[str, float]] = []
        self._t0 = self._t_val = 0.0
        self._seen = 0

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0, self._t_val, self._seen = time.perf_counter(), 0.0, 0
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]  # the rate this epoch used

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._seen += len(batch[-1])

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and not self._t_val:
            self._t_val = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        now = time.perf_counter()
        train_s = (self._t_val or now) - self._t0
        row = {"epoch": trainer.current_epoch + 1}
        for k, v in sorted(trainer.callback_metrics.items()):
            row[k] = round(float(v), 6)
        row["lr"] = self._lr
        row["epoch_s"] = round(now - self._t0, 3)
        row["train_img_per_s"] = round(self._seen * trainer.world_size / max(train_s, 1e-9), 1)
        self.rows.append(row)
        if trainer.is_global_zero:
            self.run.write_metrics(self.rows)
            if self.echo:
                shown = [k for k in ("train_loss", "val_loss", "val_acc", "val_miou") if k in row]
                print(
                    f"epoch {row['epoch']}/{trainer.max_epochs} "
                    + " ".join(f"{k} {row[k]:.4f}" for k in shown)
                    + f" ({row['epoch_s']:.1f} s, {_rate(row['train_img_per_s'])} img/s)",
                    flush=True,
                )


def _rate(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2f}"


class Snapshots(L.Callback):
    """Weights-only checkpoints at chosen epochs (1-based), for the analysis step."""

    def __init__(self, run: RunFolder, epochs: set[int]):
        self.run, self.epochs = run, set(epochs)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if epoch not in self.epochs or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        # the weights the epoch's metrics were measured with
        ema = next((c for c in trainer.callbacks if isinstance(c, WeightEMA)), None)
        ckpt = {
            "state_dict": ema.averaged_state_dict() if ema else pl_module.state_dict(),
            "epoch": epoch,
            "metrics": metrics,
            META_KEY: pl_module.meta.to_dict(),
        }
        self.run.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(ckpt, self.run.snapshot(epoch))


class WeightEMA(EMAWeightAveraging):
    """An exponential moving average of the weights (trainer.ema), Lightning's: validation runs
    on the average, the checkpoints hold it as their state_dict (the trained weights ride
    along for --resume, under current_model_state) and the model ends the run holding it.

    The decay warms up as TensorFlow's ExponentialMovingAverage does with num_updates: after n
    updates the average keeps min(decay, (1 + n) / (10 + n)) of itself. Without it a decay of
    0.999 still holds 0.999^352 = 0.70 of the starting weights (and their untrained head)
    after 352 steps, so the first epochs' validation and best.ckpt would score those."""

    def __init__(self, decay: float):
        super().__init__(decay=decay)
        self._kwargs["avg_fn"] = warmed_up_ema(decay)

    def averaged_state_dict(self) -> dict[str, Any]:
        """The average's state_dict, keyed as the task's own."""
        return self._average_model.module.state_dict()


def warmed_up_ema(decay: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """AveragedModel's avg_fn: the exponential moving average with TensorFlow's warm-up, the
    decay min(decay, (1 + n) / (10 + n)) after n updates (n a tensor: no device sync)."""

    def average(averaged: Tensor, current: Tensor, n: Tensor) -> Tensor:
        keep = torch.clamp((1 + n) / (10 + n), max=decay)
        return averaged * keep + current * (1 - keep)

    return average


def default_snapshots(epochs: int) -> set[int]:
    """First, middle and last epoch."""
    return {1, max(1, (epochs + 1) // 2), epochs}


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps its record when the run folder has been moved or copied.

    Lightning 2.6 forgets the best score when a resumed checkpoint names another folder, so
    the first epoch after the resume overwrote best.ckpt even when it was worse. Here the
    saved paths are moved into the current folder and the best score is kept."""

    def _generate_state_key(self, **kwargs: Any) -> str:
        # ModelCheckpoint's key: the checkpoints of every run, older ones too, stay resumable
        return f"ModelCheckpoint{kwargs!r}"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old, new = state_dict.get("dirpath"), self.dirpath
        if old and new and old != new:

            def move(path: Any) -> Any:
                if isinstance(path, str) and Path(path).parent == Path(old):
                    return str(Path(new) / Path(path).name)
                return path

            state_dict = dict(
                state_dict,
                dirpath=new,
                best_model_path=move(state_dict.get("best_model_path")),
                kth_best_model_path=move(state_dict.get("kth_best_model_path")),
                last_model_path=move(state_dict.get("last_model_path")),
                best_k_models={move(k): v for k, v in state_dict.get("best_k_models", {}).items()},
            )
        super().load_state_dict(state_dict)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic wherever the run folder lives, and its reader
    made unable to run code.

    Lightning 2.6 writes to a file in the system temp folder and moves it into place: a rename
    when both are on one file system, but a copy into the final name (torn by a kill or a full
    disk) when they are not, e.g. /tmp on tmpfs. vislab writes a temporary file beside the
    target, fsyncs it and renames it. Resuming loads with weights_only=True: vislab's
    checkpoints are plain dicts of tensors and numbers."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported by vislab's checkpoint writer")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)
