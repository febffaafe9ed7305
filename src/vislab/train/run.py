"""`vislab train`: one recipe -> one run folder (its layout: vislab/run_folder.py)."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

from vislab import __version__
from vislab.config import Config
from vislab.course.leak import warn_cifar100
from vislab.errors import VislabError
from vislab.infer.meta import ModelMeta, slide_fields
from vislab.run_folder import RunFolder
from vislab.tasks import task_spec
from vislab.train.init_weights import init_weights
from vislab.train.loggers import finish_loggers
from vislab.train.resume import check_resumable, epochs_done, new_identity, prepare_run_dir


def _resolved(cfg: Config) -> Config:
    """The data root, model.init and model.teacher as absolute paths (the run folder names
    the same files from any folder); with model.init no model.kwargs.weights (the
    checkpoint's weights replace ImageNet's); the pretrained weights fetched and their input
    size recorded."""
    from vislab.models.fetch import prepare

    if cfg.data.root is not None:
        root = str(Path(cfg.data.root).resolve())
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=root))
    m = cfg.model
    if m.teacher is not None:
        m = dataclasses.replace(m, teacher=str(Path(m.teacher).resolve()))
    if m.init is not None:
        from vislab.models import without_weights

        init = str(Path(m.init).resolve())
        m = dataclasses.replace(m, init=init, kwargs=without_weights(m.kwargs))
    # the weights found or downloaded now, not after minutes of decoding
    m = dataclasses.replace(m, kwargs=prepare(m.name, dict(m.kwargs)))
    return dataclasses.replace(cfg, model=m)


def train(cfg: Config, out: Path, resume: bool = False) -> Path:
    """Train cfg into the run folder out; returns the path of the best checkpoint. One
    process at a time trains into a folder (the others of a multi-process run join it)."""
    from lightning.pytorch.utilities import rank_zero_only  # the rank from the launcher's env

    from vislab.devices import check_processes, check_trainer
    from vislab.train.loggers import check_loggers

    t = cfg.trainer
    check_processes(t.devices, t.num_nodes, t.strategy)  # before the data
    check_trainer(t.accelerator, t.devices, t.precision, t.sync_batchnorm, t.num_nodes)
    check_loggers(t.loggers)
    _refuse_run_among_data(cfg, Path(out))
    run = RunFolder(out)
    if resume:
        check_resumable(run)  # before the lock: a folder that holds no run is left as it was
    if rank_zero_only.rank != 0:
        return _train(_resolved(cfg), run, resume, rank_zero_only.rank)
    with run.lock():
        return _train(_resolved(cfg), run, resume, 0)


def _refuse_run_among_data(cfg: Config, out: Path) -> None:
    """The run folder is neither the data nor inside a folder training reads: a run written
    into a class tree would be read as a class by the next training, and one over the data
    root would mix checkpoints with the images."""
    from vislab.fileio import refuse_writing_over_inputs

    try:
        d = cfg.data.located()
    except VislabError:
        return  # no data to write over; said after the initial weights are checked
    folders = [d.resolve(d.train), d.resolve(d.val)]
    inputs = [*folders, d.resolve(d.val_labels), cfg.model.init, cfg.model.teacher]
    refuse_writing_over_inputs([("--out", out)], inputs)
    target = out.resolve()
    for folder in folders:
        if folder.resolve() in target.parents:
            raise VislabError(
                f"--out {out} is inside {folder}, which training reads (its folders would be "
                "read as data); write the run elsewhere"
            )


def _lightning_modules(task: str) -> tuple[type, type]:
    """(data module, LightningModule) of a task."""
    from vislab.train.classification import ClassificationData, ClassificationTask
    from vislab.train.segmentation import SegmentationData, SegmentationTask

    return {
        "classification": (ClassificationData, ClassificationTask),
        "segmentation": (SegmentationData, SegmentationTask),
    }[task]


def _train(cfg: Config, run: RunFolder, resume: bool, rank: int) -> Path:
    ckpt_path = prepare_run_dir(cfg, run, resume, rank)
    if ckpt_path is not None and epochs_done(ckpt_path, cfg.trainer.epochs) == cfg.trainer.epochs:
        print(f"{run.path} is complete ({cfg.trainer.epochs} epochs); nothing to train")
        return run.best

    import lightning as L

    from vislab.runtime import set_threads

    spec = task_spec(cfg.task)
    Data, Task = _lightning_modules(cfg.task)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")  # data is in memory
    warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")  # Lightning 2.6 on torch 2.14
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # resume: checked above
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    threads = set_threads(cfg.trainer.threads)
    L.seed_everything(cfg.seed, verbose=False)

    init_state, init_meta = init_weights(cfg)  # before the data: fails in a second
    from vislab.train.distill import load_teacher

    teacher = load_teacher(cfg)  # so is a teacher that is no classifier
    cfg = dataclasses.replace(cfg, data=cfg.data.located())  # the folders found named
    m, d = cfg.model, cfg.data
    warn_cifar100([m.kwargs.get("weights"), m.init, m.name], [d.resolve(d.train), d.resolve(d.val)])
    t0 = time.perf_counter()
    data = Data(cfg)
    (th, tw), (vh, vw) = data.train_set.size, data.val_set.size
    print(
        f"data: {len(data.train_set)} train images of {tw}x{th}, {len(data.val_set)} val "
        f"images of {vw}x{vh}, {len(data.classes)} classes "
        f"(decoded in {time.perf_counter() - t0:.1f} s); {threads} thread(s)"
    )
    if teacher is not None:  # its targets for the train set, then its memory back
        teacher.attach(data.train_set, data.classes, d.eval_batch_size, run.teacher_targets, rank)
        teacher = None
    k = _num_classes(cfg, data.classes, init_meta)
    if init_meta is not None and (cfg.data.mean is None or cfg.data.std is None):
        # the weights were trained on inputs normalised with their run's statistics
        data.mean, data.std = init_meta.mean, init_meta.std
    identity = (run.identity() if resume else None) or new_identity(cfg)
    task = Task.from_config(cfg, _model_meta(cfg, data, k, identity["id"]))
    if init_state is not None:
        task.model.load_state_dict(init_state)
        del init_state  # not a second copy of every weight for the whole run
        print(f"weights from {cfg.model.init} (epoch {init_meta.epoch})")

    trainer, best_cb = _trainer(cfg, run, spec.monitor, identity["id"])
    if trainer.is_global_zero:
        run.write_identity(identity)
        run.write_config(cfg)
        if data.spec is not None:
            run.write_spec(data.spec)
        run.write_class_balance(data.class_balance())
    _fit(trainer, task, data, ckpt_path)
    if trainer.is_global_zero:
        score = best_cb.best_model_score
        print(f"best {spec.monitor} {float(score):.4f}; run folder: {run.path}")
    return run.best


def _fit(trainer, task, data, ckpt_path: Path | None) -> None:
    """trainer.fit, from ckpt_path when resuming; weights or optimizer state of the checkpoint
    that do not fit the run's model (a file edited past resume's checks) are one line."""
    if ckpt_path is not None:
        print(f"resuming from {ckpt_path}")
    sigint = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(task, datamodule=data, ckpt_path=ckpt_path)
    except SystemExit:
        if trainer.interrupted:  # Lightning answers Ctrl-C with sys.exit(1)
            raise KeyboardInterrupt from None
        raise
    except (RuntimeError, ValueError) as e:
        text = str(e).strip()
        if ckpt_path is None or not text.startswith(_MISFIT):
            raise
        details = [line.strip() for line in text.splitlines()[1:] if line.strip()]
        said = (details or [text])[0]
        raise VislabError(
            f"--resume: {ckpt_path} does not fit the model the run trains "
            f"({said if len(said) <= 200 else said[:197] + '...'}); put the run's own "
            "last.ckpt back, or train afresh with another --out"
        ) from None
    finally:
        finish_loggers(trainer.loggers)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)  # Lightning leaves Ctrl-C ignored


# how torch starts saying that a checkpoint's weights (load_state_dict) or optimizer state
# (Optimizer.load_state_dict) do not fit the model they are loaded into
_MISFIT = ("Error(s) in loading state_dict", "loaded state dict")


def _num_classes(cfg: Config, classes: list[str], init_meta: ModelMeta | None) -> int:
    """The number of classes the run trains: the data's (classes, in index order). A recipe
    or a model.init checkpoint that fixes another is refused: never a head of the wrong size."""
    k = len(classes)
    declared = cfg.declared_num_classes()
    named = ", ".join(classes[:8]) + (", ..." if k > 8 else "")
    if declared is not None and declared != k:
        key = "model.num_classes" if cfg.model.num_classes is not None else "data.classes"
        raise VislabError(
            f"config key {key}: the recipe fixes {declared} classes but the data holds {k} "
            f"({named}); leave model.num_classes out, it follows the data"
        )
    if init_meta is not None and init_meta.num_classes != k:
        raise VislabError(
            f"model.init: {cfg.model.init} holds {init_meta.model} with "
            f"{init_meta.num_classes} classes; the data holds {k} ({named})"
        )
    return k


def _model_meta(cfg: Config, data, k: int, run_id: str | None = None) -> ModelMeta:
    """The metadata every checkpoint of the run carries (data: the run's data module, k: the
    number of classes it holds, run_id: the run's identity)."""
    return ModelMeta(
        run_id=run_id,
        task=cfg.task,
        model=cfg.model.name,
        model_kwargs=dict(cfg.model.kwargs),
        num_classes=k,
        classes=data.classes,
        mean=list(data.mean),
        std=list(data.std),
        image_size=data.image_size,
        class_weights=data.class_weights,
        dataset=data.spec.to_dict() if data.spec is not None else None,
        # the validation tiles are at their own size: data.image_size rescaled them as it did
        # the training tiles
        **slide_fields(
            data.image_size,
            list(data.val_set.size) if cfg.data.image_size else None,
            cfg.data.crop_size,
        )
        if cfg.task == "segmentation"
        else {},
        config=cfg.to_dict(),
        vislab_version=__version__,
    )


def _trainer(cfg: Config, run: RunFolder, monitor: str, run_id: str):
    """Lightning's Trainer with vislab's callbacks and the recipe's loggers, and the callback
    that keeps best.ckpt."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor

    from vislab.train.callbacks import (
        AtomicCheckpointIO,
        EpochMetricsCSV,
        RunCheckpoint,
        Snapshots,
        WeightEMA,
        default_snapshots,
    )
    from vislab.train.loggers import make_loggers

    t = cfg.trainer
    snapshots = set(t.snapshots) if t.snapshots is not None else default_snapshots(t.epochs)
    # Two checkpoint callbacks: Lightning 2.6's save_last=True writes last.ckpt only when the
    # monitored metric improves, so a run whose val accuracy stalls would resume from an old
    # epoch. A monitor-less top-1 callback named "last" is rewritten after every epoch.
    best_cb = RunCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=monitor,
        mode="max",
        save_on_train_epoch_end=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    last_cb = RunCheckpoint(
        dirpath=run.checkpoints,
        filename="last",
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    # a progress bar on a terminal; in a log file, one line per epoch instead
    progress_bar = t.progress_bar and sys.stdout.isatty()
    callbacks = [EpochMetricsCSV(run, echo=not progress_bar), Snapshots(run, snapshots)]
    loggers = make_loggers(t.loggers, run, cfg.to_dict(), run_id) if t.loggers else []
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if t.ema:
        callbacks.append(WeightEMA(decay=t.ema))
    trainer = L.Trainer(
        max_epochs=t.epochs,
        precision=t.precision,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        sync_batchnorm=t.sync_batchnorm,
        use_distributed_sampler=False,  # the data module shards (train/datamodule.py)
        callbacks=[*callbacks, best_cb, last_cb],
        plugins=[AtomicCheckpointIO()],
        logger=loggers or False,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run.path,
    )
    return trainer, best_cb
