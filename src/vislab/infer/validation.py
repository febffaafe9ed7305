"""A model's (or an ensemble's) score on its recipe's validation set, predicted as the course's
scripts would predict it: what `vislab reproduce` writes beside each run and `vislab train`
of an ensemble recipe beside its members."""

from __future__ import annotations

import shutil
from pathlib import Path

from vislab.config import Config
from vislab.run_folder import RunFolder


def score_validation(ckpts: list[Path], cfg: Config, folder: RunFolder, label: str = "") -> None:
    """Predict cfg's validation set with ckpts (one model, or several as an ensemble) into
    folder's val_pred.csv or val_masks/, and score it over the checkpoints' classes, as
    `vislab evaluate --ckpt` does, into folder's val_eval/ (written whole, replacing an
    earlier one); prints the score, after label. It runs on the recipe's trainer.threads when
    set: right after a training the load average still counts the training's own threads as
    busy, and the cores that look free would be fewer than the recipe asked for."""
    from vislab.infer.predict import predict_folder
    from vislab.metrics.evaluate import command_classes, command_spec, evaluate_classification
    from vislab.metrics.mask_scores import evaluate_masks, format_masks, write_mask_scores

    data = cfg.data.located()
    images = data.resolve(data.val)
    scratch = folder.path / ".val_eval.partial"
    threads = cfg.trainer.threads
    if cfg.task == "classification":
        pred = folder.val_pred
        predict_folder(ckpts, images, pred, engine="torch", threads=threads)
        gt = data.resolve(data.val_labels) or images
        result = evaluate_classification(pred, gt, scratch, classes=command_classes(ckpts[0]))
        print(f"   {label}val accuracy {result['accuracy']:.4f} ({pred})")
    else:
        masks = folder.val_masks
        predict_folder(ckpts, images, masks, engine="torch", threads=threads)
        spec = command_spec(ckpts[0])
        result = evaluate_masks(images, masks, spec)
        write_mask_scores(result, None, scratch, spec)
        if label:
            print(label.strip())
        print(format_masks(result, spec, verbose=False))
    shutil.rmtree(folder.eval_dir, ignore_errors=True)
    scratch.rename(folder.eval_dir)  # the marker of this step appears whole or not at all
