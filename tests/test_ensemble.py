"""`vislab predict --ckpt A B`: models of one task and the same classes predict as an ensemble,
the mean of their class probabilities; any other mix is refused in one line."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import seg_train_args, train_args
from PIL import Image

from vislab.cli import main
from vislab.data.images import list_images
from vislab.data.tiles import load_sat_images
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import class_probabilities, model_inputs, tile_logits, to_nchw
from vislab.infer.predict import read_resized


def _run(args) -> None:
    assert main(args) == 0


def _two_seeds(args, data, root) -> list:
    """best.ckpt of a 1-epoch run at seed 0 and one at seed 1."""
    for seed in (0, 1):
        _run(args(data, root / f"s{seed}", 1, "--set", f"seed={seed}"))
    return [root / f"s{seed}" / "checkpoints" / "best.ckpt" for seed in (0, 1)]


@pytest.fixture(scope="module")
def classifiers(p1_tiny, tmp_path_factory):
    return _two_seeds(train_args, p1_tiny, tmp_path_factory.mktemp("ensemble_cls"))


@pytest.fixture(scope="module")
def segmenters(p2_tiny, tmp_path_factory):
    return _two_seeds(seg_train_args, p2_tiny, tmp_path_factory.mktemp("ensemble_seg"))


def _labels(path) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        return [(r["filename"], r["label"]) for r in csv.DictReader(f)]


def test_classifiers_average_their_probabilities(classifiers, p1_tiny, tmp_path):
    images = p1_tiny / "val_50"
    files = list_images(images)
    probs = []
    for ckpt in classifiers:
        model, meta = load_model(ckpt)
        x = to_nchw(read_resized(files, meta.image_size))
        probs.append(class_probabilities(model, x, meta.mean, meta.std, tta=True))
    names = meta.classes
    assert not torch.equal(probs[0].argmax(1), probs[1].argmax(1))  # the mean is neither's
    best = (probs[0] + probs[1]).argmax(1).tolist()
    want = [(f.name, names[i]) for f, i in zip(files, best, strict=True)]
    a, b = (str(c) for c in classifiers)
    one = ["predict", "--images", str(images), "--threads", "1", "--tta"]
    _run([*one, "--ckpt", a, b, "--out", str(tmp_path / "ab.csv")])
    _run([*one, "--ckpt", a, "--ckpt", b, "--out", str(tmp_path / "a_b.csv")])
    assert _labels(tmp_path / "ab.csv") == want == _labels(tmp_path / "a_b.csv")
    assert len(want) == 16


@torch.inference_mode()
def test_segmenters_average_their_probabilities_per_pixel(segmenters, p2_tiny, tmp_path):
    folder = p2_tiny / "validation"
    files, ids = load_sat_images(folder)
    tiles = to_nchw(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
    total, alone = 0, []
    for ckpt in segmenters:
        model, meta = load_model(ckpt)
        (x,) = model_inputs(model, tiles, meta.mean, meta.std, len(tiles))
        logits = tile_logits(model.eval(), x, meta).float()
        alone.append(logits.argmax(1))
        total = total + logits.softmax(1)
    assert not torch.equal(*alone)  # the mean is neither's
    out = tmp_path / "masks"
    args = ["--ckpt", *map(str, segmenters), "--images", str(folder), "--out", str(out)]
    _run(["predict", *args, "--format", "index", "--threads", "1"])
    written = np.stack([np.asarray(Image.open(out / f"{i}.png")) for i in ids])
    assert written.shape == (4, 64, 64)
    assert (written == total.argmax(1).numpy()).all()


def test_a_mix_of_tasks_or_classes_is_refused(classifiers, segmenters, p1_tiny, tmp_path, capsys):
    images = ["--images", str(p1_tiny / "val_50"), "--out", str(tmp_path / "p.csv")]
    assert main(["predict", "--ckpt", str(classifiers[0]), str(segmenters[0]), *images]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a segmentation model and" in err[0]
    assert "an ensemble predicts one task" in err[0]
    other = torch.load(classifiers[1], weights_only=True)
    other["vislab"]["classes"] = ["cat", "dog", "fox", "owl"]
    renamed = tmp_path / "renamed.ckpt"
    torch.save(other, renamed)
    assert main(["predict", "--ckpt", str(classifiers[0]), str(renamed), *images]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--ckpt {renamed} predicts other classes than" in err[0]
    assert not (tmp_path / "p.csv").exists()
