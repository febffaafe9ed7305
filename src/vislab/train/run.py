"""`vislab train`: one recipe -> one run folder.

<run>/config.yaml            the resolved config
<run>/metrics.csv            one row per epoch
<run>/checkpoints/best.ckpt  best val accuracy or mIoU (Lightning checkpoint, plain dict)
<run>/checkpoints/last.ckpt  end of the latest epoch; --resume continues from it
<run>/checkpoints/epoch_NNN.ckpt  weights-only snapshots (default: first, middle, last epoch)
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import warnings
from pathlib import Path

import yaml

from vislab import __version__
from vislab.config import Config, config_from_dict, save_config
from vislab.errors import VislabError


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


# how a run is executed, not what it computes: may change between a run and its resumption
RUNTIME_KEYS = ("threads", "progress_bar")


def config_changes(cfg: Config, out: Path) -> list[str]:
    """How cfg differs from the config saved in the run folder out ("key: old -> new").

    The data root and model.init are compared as resolved paths; trainer.threads and
    trainer.progress_bar are not compared."""
    saved = config_from_dict(yaml.safe_load((out / "config.yaml").read_text())).to_dict()
    now = cfg.to_dict()
    for c in (saved, now):
        for section, key in (("data", "root"), ("model", "init")):
            if c[section][key] is not None:
                c[section][key] = str(Path(c[section][key]).resolve())
        for k in RUNTIME_KEYS:
            c["trainer"].pop(k)
    return _diff(saved, now)


def _prepare_run_dir(cfg: Config, out: Path, resume: bool) -> Path | None:
    """Check the run folder against --resume; return the checkpoint to resume from."""
    saved = out / "config.yaml"
    last = out / "checkpoints" / "last.ckpt"
    if not resume:
        # the other processes of a multi-process run start after or while rank 0 writes the
        # folder: only rank 0 checks that it is new (the rank comes from the launcher's env)
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank == 0 and (saved.exists() or (out / "checkpoints").exists()):
            raise VislabError(
                f"{out} already holds a run; pass --resume to continue it or --out for a new one"
            )
        return None
    if not saved.exists():
        raise VislabError(f"--resume: {out} holds no run (no config.yaml)")
    changes = config_changes(cfg, out)
    if changes:
        raise VislabError(
            f"--resume: the config differs from the one in {saved}: "
            + "; ".join(changes)
            + " (to start over, remove the folder or pick another --out)"
        )
    return last if last.exists() else None


def epochs_done(last: Path) -> int:
    """Epochs finished by the run whose last.ckpt this is (Lightning stores the 0-based one)."""
    import torch

    try:  # mmap: only the "epoch" entry is read, not gigabytes of weights
        return int(torch.load(last, map_location="cpu", weights_only=True, mmap=True)["epoch"]) + 1
    except Exception as e:
        raise VislabError(f"cannot read checkpoint {last}: {e}") from None


def _init_weights(cfg: Config) -> tuple[dict | None, dict | None]:
    """(state dict, meta) of the checkpoint model.init names, loaded into the recipe's model
    once to check that they fit; (None, None) without model.init."""
    if cfg.model.init is None:
        return None, None
    from vislab.checkpoint import load_model
    from vislab.models import create_model

    path = Path(cfg.model.init)
    if path.suffix == ".onnx":
        raise VislabError(f"model.init: {path} is an ONNX file; give its run's .ckpt instead")
    model, meta = load_model(path, cfg.task)
    m = cfg.model
    if (meta["model"], meta["num_classes"]) != (m.name, m.num_classes):
        raise VislabError(
            f"model.init: {path} holds {meta['model']} with {meta['num_classes']} classes; "
            f"the recipe trains {m.name} with {m.num_classes}"
        )
    state = model.state_dict()
    try:
        create_model(m.name, num_classes=m.num_classes, **m.kwargs).load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[-1].strip()
        raise VislabError(
            f"model.init: the weights of {path} do not fit the recipe's {m.name} "
            f"(model.kwargs {dict(m.kwargs)} against {meta['model_kwargs']}): {first}"
        ) from None
    return state, meta


def _with_init(cfg: Config) -> Config:
    """model.init as an absolute path (the run folder names the same file from any folder)
    and no model.kwargs.weights: the checkpoint's weights replace ImageNet's."""
    if cfg.model.init is None:
        return cfg
    kwargs = {k: v for k, v in cfg.model.kwargs.items() if k != "weights"}
    init = str(Path(cfg.model.init).resolve())
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init=init, kwargs=kwargs))


def train(cfg: Config, out: Path, resume: bool = False) -> Path:
    """Train cfg into the run folder out; returns the path of the best checkpoint."""
    out = Path(out)
    cfg = _with_init(cfg)
    ckpt_path = _prepare_run_dir(cfg, out, resume)
    if ckpt_path is not None and epochs_done(ckpt_path) >= cfg.trainer.epochs:
        print(f"{out} is complete ({cfg.trainer.epochs} epochs); nothing to train")
        return out / "checkpoints" / "best.ckpt"

    import lightning as L

    from vislab.runtime import set_threads
    from vislab.train.callbacks import (
        AtomicCheckpointIO,
        EpochMetricsCSV,
        RunCheckpoint,
        Snapshots,
        default_snapshots,
    )

    if cfg.task == "classification":
        from vislab.train.classification import ClassificationData as Data
        from vislab.train.classification import ClassificationTask as Task

        monitor = "val_acc"
    else:
        from vislab.train.segmentation import SegmentationData as Data
        from vislab.train.segmentation import SegmentationTask as Task

        monitor = "val_miou"

    warnings.filterwarnings("ignore", ".*does not have many workers.*")  # data is in memory
    warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")  # Lightning 2.6 on torch 2.14
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # resume: checked above
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    threads = set_threads(cfg.trainer.threads)
    L.seed_everything(cfg.seed, verbose=False)

    init_state, init_meta = _init_weights(cfg)  # before the data: fails in a second
    t0 = time.perf_counter()
    data = Data(cfg)
    (th, tw), (vh, vw) = (s.images.shape[-2:] for s in (data.train_set, data.val_set))
    print(
        f"data: {len(data.train_set)} train images of {tw}x{th}, {len(data.val_set)} val "
        f"images of {vw}x{vh}, {len(data.classes)} classes "
        f"(decoded in {time.perf_counter() - t0:.1f} s); {threads} thread(s)"
    )
    if init_meta is not None and (cfg.data.mean is None or cfg.data.std is None):
        # the weights were trained on inputs normalised with their run's statistics
        data.mean, data.std = init_meta["mean"], init_meta["std"]
    meta = {
        "task": cfg.task,
        "model": cfg.model.name,
        "model_kwargs": dict(cfg.model.kwargs),
        "num_classes": cfg.model.num_classes,
        "classes": data.classes,
        "mean": data.mean,
        "std": data.std,
        "image_size": data.image_size,
        "class_weights": data.class_weights,
        "config": cfg.to_dict(),
        "vislab_version": __version__,
    }
    task = Task(cfg, meta)
    if init_state is not None:
        task.model.load_state_dict(init_state)
        del init_state  # not a second copy of every weight for the whole run
        print(f"weights from {cfg.model.init} (epoch {init_meta['epoch']})")

    ckpt_dir = out / "checkpoints"
    t = cfg.trainer
    snapshots = set(t.snapshots) if t.snapshots is not None else default_snapshots(t.epochs)
    # Two checkpoint callbacks: Lightning 2.6's save_last=True writes last.ckpt only when the
    # monitored metric improves, so a run whose val accuracy stalls would resume from an old
    # epoch. A monitor-less top-1 callback named "last" is rewritten after every epoch.
    best_cb = RunCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=monitor,
        mode="max",
        save_on_train_epoch_end=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    last_cb = RunCheckpoint(
        dirpath=ckpt_dir,
        filename="last",
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    # a progress bar on a terminal; in a log file, one line per epoch instead
    progress_bar = t.progress_bar and sys.stdout.isatty()
    callbacks = [
        EpochMetricsCSV(out / "metrics.csv", echo=not progress_bar),
        Snapshots(ckpt_dir, snapshots),
        best_cb,
        last_cb,
    ]
    trainer = L.Trainer(
        max_epochs=t.epochs,
        precision=t.precision,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        use_distributed_sampler=False,  # the data module shards (train/datamodule.py)
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=False,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out,
    )
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    if ckpt_path is not None:
        print(f"resuming from {ckpt_path}")
    trainer.fit(task, datamodule=data, ckpt_path=ckpt_path)
    best = ckpt_dir / "best.ckpt"
    if trainer.is_global_zero:
        score = best_cb.best_model_score
        print(f"best {monitor} {float(score):.4f}; run folder: {out}")
    return best
