"""`vislab embed`: the second-to-last layer of a classifier on a labeled set, in 2-D.

PCA of the final model (axes labelled with their explained variance) and t-SNE at the early,
middle and final snapshot of a run, side by side. The t-SNE panels share perplexity, seed and
a PCA initialisation, so that they differ only by the features. Each panel is scored in 2-D by
the 10-nearest-neighbour accuracy (5-fold) and the silhouette score of the true classes, so
the explanation can rest on numbers. Coordinates go to coords.npz beside the figures.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vislab.data.images import ImageSet, load_labeled
from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, staged_into
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import model_inputs, prepare, to_nchw
from vislab.infer.meta import ModelMeta
from vislab.run_folder import RunFolder
from vislab.steps import Steps


@torch.inference_mode()
def features(
    model, meta: ModelMeta, images: torch.Tensor, batch: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) outputs of the second-to-last layer (forward_head(..., pre_logits=True)) and the
    (N,) predicted classes, from one pass of the network's body."""
    model = prepare(model)
    feats, preds = [], []
    for x in model_inputs(model, images, meta.mean, meta.std, batch):
        body = model.forward_features(x)
        feats.append(model.forward_head(body, pre_logits=True).float().cpu())
        preds.append(model.forward_head(body).argmax(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def per_class_accuracy(labels: np.ndarray, preds: np.ndarray, classes: list[str]) -> dict:
    """{class name: accuracy on its validation images} for the classes that have any."""
    return {classes[c]: float((preds[labels == c] == c).mean()) for c in np.unique(labels).tolist()}


def scores_2d(coords: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.bincount(labels)
    folds = int(min(5, counts[counts > 0].min()))  # stratified folds need that many per class
    acc = float("nan")
    if folds >= 2:
        k = min(10, len(labels) * (folds - 1) // folds)
        acc = float(cross_val_score(KNeighborsClassifier(k), coords, labels, cv=folds).mean())
    return {"knn_acc_2d": acc, "silhouette_2d": float(silhouette_score(coords, labels))}


def tsne(x: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(x) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def _inputs(
    source: Path, out: Path | None, data: Path | None
) -> tuple[list[Path], Path, Path | None, Path]:
    """(checkpoints, labeled folder, its labels CSV or None, output folder) of embed's
    arguments: a run folder's snapshots on its validation set, or one checkpoint on --data."""
    if source.is_dir():
        run = RunFolder(source)
        d = run.config().data
        folder = data or run.val_folder()
        labels_csv = None if data else d.resolve(d.val_labels)
        return run.pick_snapshots(), folder, labels_csv, Path(out) if out else run.embed_dir
    if data is None:
        raise VislabError("embed of a single checkpoint needs --data (a labeled folder)")
    return [source], data, None, Path(out) if out else source.parent / f"{source.stem}_embed"


def _labeled(folder: Path, labels_csv: Path | None, meta: ModelMeta) -> ImageSet:
    """The labeled set at the model's input size, refused when its scores would be
    meaningless (fewer than 2 classes, or no more images than classes)."""
    h, w = meta.image_size
    s = load_labeled(folder, labels_csv, h if h == w else None, classes=meta.classes)
    n, k = len(s.labels), len(np.unique(s.labels))
    if not 2 <= k < n:  # what silhouette and k-NN scores need
        raise VislabError(
            f"{folder}: embed scores how classes separate, so it needs images of at "
            f"least 2 classes and more images than classes; it holds {n} image(s) of "
            f"{k} class(es)"
        )
    return s


def _write_coords(
    out: Path,
    s: ImageSet,
    pca_xy: np.ndarray,
    tsne_xy: list[np.ndarray],
    feats: list[np.ndarray],
    preds: list[np.ndarray],
    epochs: list[int],
    seed: int,
) -> None:
    """coords.npz: the labels, names, PCA and t-SNE points and predictions of each snapshot."""
    from sklearn.decomposition import PCA

    coords = io.BytesIO()
    np.savez(
        coords,
        labels=s.labels,
        names=np.asarray(s.names),
        pca=pca_xy,
        **{f"tsne_epoch_{e}": xy for e, xy in zip(epochs, tsne_xy, strict=True)},
        # each snapshot's own principal plane, for the report's explorer
        **{
            f"pca_epoch_{e}": PCA(2, random_state=seed).fit_transform(f)
            for e, f in zip(epochs, feats, strict=True)
        },
        **{f"pred_epoch_{e}": pred for e, pred in zip(epochs, preds, strict=True)},
    )
    atomic_write_bytes(out / "coords.npz", coords.getvalue())


def _snapshot_features(
    ckpts: list[Path],
    folder: Path,
    labels_csv: Path | None,
    device: torch.device | None,
    steps: Steps,
) -> tuple[ImageSet, list[ModelMeta], list[np.ndarray], list[np.ndarray]]:
    """(the labeled set, and each snapshot's metadata, features and predicted classes)."""
    metas, feats, preds = [], [], []
    for ckpt in ckpts:
        model, meta = load_model(ckpt, task="classification", device=device)
        if not metas:
            s = _labeled(folder, labels_csv, meta)
            images = to_nchw(s.images)
        metas.append(meta)
        f, pred = features(model, meta, images)
        feats.append(f)
        preds.append(pred)
        steps.step(note=f"features of epoch {meta.epoch}")
    return s, metas, feats, preds


def embed(
    source: Path,
    out: Path | None = None,
    data: Path | None = None,
    seed: int = 0,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """source: a run folder (snapshots) or one checkpoint, its models run on device (default
    the CPU). Returns the metrics written. The outputs are made in a scratch folder and move
    into the output folder together at the end (a failure or a kill leaves the earlier ones
    as they were), the folder held for this command alone meanwhile (staged_into)."""
    option = "--out" if out is not None else "the embed folder"
    ckpts, folder, labels_csv, out = _inputs(Path(source), out, data)
    with staged_into(out, option) as scratch:
        result = _embed(ckpts, folder, labels_csv, scratch, seed, device)
    result["out"] = str(out)
    return result


def _embed(
    ckpts: list[Path],
    folder: Path,
    labels_csv: Path | None,
    out: Path,
    seed: int,
    device: torch.device | None,
) -> dict[str, Any]:
    """embed's work: each snapshot's features and their 2-D maps, written into out."""
    from sklearn.decomposition import PCA

    # the network's features of each snapshot, then a t-SNE of each (the longer part)
    steps = Steps(2 * len(ckpts), "embed")
    s, metas, feats, preds = _snapshot_features(ckpts, folder, labels_csv, device, steps)
    epochs = [m.epoch for m in metas]
    labels = s.labels
    pca = PCA(2, random_state=seed).fit(feats[-1])
    pca_xy = pca.transform(feats[-1])
    tsne_xy = []
    for f, e in zip(feats, epochs, strict=True):
        tsne_xy.append(tsne(f, seed))
        steps.step(note=f"t-SNE of epoch {e}")
    steps.close()
    result = {
        "model": metas[-1].model,
        "data": str(folder),
        "n": int(len(labels)),
        "classes": list(s.classes),
        "feature_dim": int(feats[-1].shape[1]),
        "pca": {
            "epoch": epochs[-1],
            "explained_variance": [float(v) for v in pca.explained_variance_ratio_],
            **scores_2d(pca_xy, labels),
        },
        "tsne": [
            {"epoch": e, **scores_2d(xy, labels)} for e, xy in zip(epochs, tsne_xy, strict=True)
        ],
        "per_class_accuracy": [
            {"epoch": e, "accuracy": per_class_accuracy(labels, pred, metas[-1].classes)}
            for e, pred in zip(epochs, preds, strict=True)
        ],
    }
    _write_coords(out, s, pca_xy, tsne_xy, feats, preds, epochs, seed)
    atomic_write_bytes(out / "metrics.json", json.dumps(result, indent=1).encode())
    from vislab.analysis.embed_plots import plot_pca, plot_tsne

    plot_pca(pca_xy, labels, result, out / "pca.png")
    plot_tsne(tsne_xy, labels, result, out / "tsne.png")
    return result
