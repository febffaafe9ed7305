"""`vislab predict --ckpt A B`: models of one task and the same classes predict as an ensemble,
the mean of their class probabilities; any other mix is refused in one line."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from conftest import REPO, seg_train_args, train_args
from PIL import Image

from vislab import runtime
from vislab.cli import main
from vislab.config import load_config
from vislab.data.images import list_images
from vislab.data.tiles import load_sat_images
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import class_probabilities, model_inputs, tile_logits, to_nchw
from vislab.infer.predict import read_resized
from vislab.infer.validation import score_validation
from vislab.run_folder import RunFolder

MODEL_A = REPO / "configs" / "p1_model_a.yaml"
# what conftest.train_args sets, but for --epochs and --data
TINY_MODEL_A = (
    "[model.num_classes=4, data.batch_size=16, trainer.threads=1, trainer.progress_bar=false"
)


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


def _recipe(path, members: str):
    path.write_text(f"# two runs of Model A\nensemble:\n{members}")
    return path


def _two_seed_recipe(folder):
    return _recipe(
        folder / "pair.yaml",
        f"  - {{name: s0, config: {MODEL_A}, set: {TINY_MODEL_A}, seed=0]}}\n"
        f"  - {{name: s1, config: {MODEL_A}, set: {TINY_MODEL_A}, seed=1]}}\n",
    )


def _weights(ckpt) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_an_ensemble_recipe_trains_its_members_and_predicts_as_them(
    classifiers, p1_tiny, tmp_path, capsys
):
    recipe = _two_seed_recipe(tmp_path)
    out = tmp_path / "pair"
    train = ["train", str(recipe), "--data", str(p1_tiny), "--out", str(out), "--epochs", "1"]
    _run(train)
    printed = capsys.readouterr().out
    assert "ensemble member 2/2: s1" in printed
    # each member is the run `vislab train` makes of its recipe and overrides alone
    for member, alone in zip(("s0", "s1"), classifiers, strict=True):
        mine, theirs = _weights(out / member / "checkpoints" / "best.ckpt"), _weights(alone)
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    images = ["--images", str(p1_tiny / "val_50"), "--threads", "1"]
    _run(["predict", "--ckpt", str(out), *images, "--out", str(tmp_path / "folder.csv")])
    a, b = (str(c) for c in classifiers)
    _run(["predict", "--ckpt", a, b, *images, "--out", str(tmp_path / "ab.csv")])
    assert _labels(tmp_path / "folder.csv") == _labels(tmp_path / "ab.csv")
    # training ended by scoring the ensemble on the validation set, as reproduce scores a run
    assert _labels(out / "val_pred.csv") == _labels(tmp_path / "ab.csv")
    right = [name.split("_")[0] == label for name, label in _labels(tmp_path / "ab.csv")]
    accuracy = json.loads((out / "val_eval" / "metrics.json").read_text())["accuracy"]
    assert accuracy == pytest.approx(sum(right) / len(right))
    assert f"ensemble: val accuracy {accuracy:.4f}" in printed
    # the course's script takes the folder too, and predicts as --ckpt A B --tta
    hw1 = ["bash", str(REPO / "hw1_1.sh"), str(p1_tiny / "val_50"), str(tmp_path / "hw1.csv")]
    subprocess.run(hw1, check=True, env=dict(os.environ, VISLAB_P1_CKPT=str(out)))
    _run(["predict", "--ckpt", a, b, *images, "--tta", "--out", str(tmp_path / "ab_tta.csv")])
    assert _labels(tmp_path / "hw1.csv") == _labels(tmp_path / "ab_tta.csv")

    # trained again: refused without --resume; with it, only what is missing trains
    assert main(train) == 2
    assert "already holds runs of this ensemble" in capsys.readouterr().err
    kept = (out / "s0" / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    torn = _weights(out / "s1" / "checkpoints" / "best.ckpt")
    for f in sorted((out / "s1").rglob("*"), reverse=True):
        f.rmdir() if f.is_dir() else f.unlink()
    (out / "s1").rmdir()
    assert main(["predict", "--ckpt", str(out), *images, "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "its member s1 has no checkpoint yet" in err and not (tmp_path / "x.csv").exists()
    _run([*train, "--resume"])
    assert "is complete (1 epochs); nothing to train" in capsys.readouterr().out
    assert (out / "s0" / "checkpoints" / "best.ckpt").stat().st_mtime_ns == kept
    again = _weights(out / "s1" / "checkpoints" / "best.ckpt")
    assert all(torch.equal(again[k], torn[k]) for k in torn)

    # --resume with a recipe whose members are others
    other = _recipe(
        tmp_path / "other.yaml",
        f"  - {{name: s0, config: {MODEL_A}, set: {TINY_MODEL_A}]}}\n"
        f"  - {{name: s2, config: {MODEL_A}, set: {TINY_MODEL_A}]}}\n",
    )
    assert main(["train", str(other), "--data", str(p1_tiny), "--out", str(out), "--resume"]) == 2
    assert "holds the ensemble of s0, s1, the recipe names s0, s2" in capsys.readouterr().err


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="1 thread and 2 look alike on 1 core")
def test_the_validation_is_scored_on_the_recipes_threads(
    classifiers, p1_tiny, tmp_path, monkeypatch
):
    """Right after a training the load average still counts the training's threads as busy:
    the scoring at the end of an ensemble's training (and beside each run of reproduce) runs
    on the recipe's trainer.threads, not on the cores that look free."""
    monkeypatch.setattr(runtime, "free_cores", lambda: 1)
    cfg = load_config(MODEL_A, ["model.num_classes=4", f"data.root={p1_tiny}", "trainer.threads=2"])
    before = torch.get_num_threads()
    try:
        score_validation(classifiers, cfg, RunFolder(tmp_path))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert (tmp_path / "val_eval" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ("  - {name: a, config: CFG}\n", "ensemble must list two or more members"),
        ("  - {name: a, config: CFG}\n  - CFG\n", "member 2: a mapping with the keys"),
        (
            "  - {name: a, config: CFG}\n  - {name: b, config: CFG, lr: 1}\n",
            "member 2: unknown key(s) lr",
        ),
        ("  - {name: a, config: CFG}\n  - {name: ../b, config: CFG}\n", "name '../b' must be"),
        ("  - {name: a, config: CFG}\n  - {name: a, config: CFG}\n", "'a' is given twice"),
        ("  - {name: a, config: CFG}\n  - {name: b, config: CFG, set: seed=1}\n", "set must"),
        ("  - {name: a, config: CFG}\n  - {name: b, config: nothing.yaml}\n", "not found"),
        ("  - {name: a, config: CFG}\n  - {name: b, config: nested.yaml}\n", "is an ensemble"),
        (
            "  - {name: a, config: CFG}\n  - {name: b, config: CFG, set: [optim.lrr=1]}\n",
            "member b: ",
        ),
        (
            "  - {name: a, config: CFG}\n  - {name: b, config: SEG}\n",
            "share one task (a classification, b segmentation)",
        ),
    ],
)
def test_a_bad_ensemble_recipe_is_one_line_and_trains_nothing(
    members, says, p1_tiny, tmp_path, capsys
):
    _recipe(tmp_path / "nested.yaml", f"  - {{name: x, config: {MODEL_A}}}\n" * 2)
    text = members.replace("CFG", str(MODEL_A)).replace(
        "SEG", str(REPO / "configs" / "p2_cpu.yaml")
    )
    recipe = _recipe(tmp_path / "bad.yaml", text)
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--data", str(p1_tiny), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and str(recipe) in err[0]
    assert not out.exists()


def test_an_ensemble_recipe_holds_only_its_members(p1_tiny, tmp_path, capsys):
    recipe = tmp_path / "mixed.yaml"
    recipe.write_text(f"seed: 1\nensemble:\n  - {{name: a, config: {MODEL_A}}}\n")
    assert main(["train", str(recipe), "--data", str(p1_tiny), "--out", str(tmp_path / "o")]) == 2
    assert "holds only the key 'ensemble', not seed" in capsys.readouterr().err


def test_every_members_data_is_checked_before_the_first_trains(p1_tiny, tmp_path, capsys):
    elsewhere = tmp_path / "p1_elsewhere"
    recipe = _recipe(
        tmp_path / "pair.yaml",
        f"  - {{name: a, config: {MODEL_A}, set: [data.root={p1_tiny}]}}\n"
        f"  - {{name: b, config: {MODEL_A}, set: [data.root={elsewhere}]}}\n",
    )
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--out", str(out), "--set", "model.num_classes=4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"member b: data.root: {elsewhere} is not a folder" in err[0]
    assert not out.exists()


def test_the_report_shows_an_ensembles_members_and_its_own_row(p1_tiny, tmp_path):
    recipe = _two_seed_recipe(tmp_path)
    out = tmp_path / "pair"
    _run(["train", str(recipe), "--data", str(p1_tiny), "--out", str(out), "--epochs", "1"])
    accuracy = json.loads((out / "val_eval" / "metrics.json").read_text())["accuracy"]
    for member, seconds in (("s0", "60"), ("s1", "120")):  # epochs of 1 and 2 minutes
        with open(out / member / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            r["epoch_s"] = seconds
        with open(out / member / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    _run(["report", str(out), "--out", str(tmp_path / "rep")])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| pair-s0 | model\\_a |" in md and "| pair-s1 | model\\_a |" in md
    mine = "| pair | ensemble: model\\_a \\+ model\\_a | the mean of the probabilities of pair-s0, "
    assert f"{mine}pair-s1 | {accuracy:.4f} | - | 2 runs | 3.0 min |" in md
    assert f"the ensemble pair {accuracy:.4f} after its members' 3 min" in md
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "ensemble: model_a + model_a" in html and f"{accuracy:.4f}</td>" in html
    # an ensemble never scored says so rather than show a number
    shutil.rmtree(out / "val_eval")
    _run(["report", str(out), "--out", str(tmp_path / "rep2")])
    rows = (tmp_path / "rep2" / "report.md").read_text()
    assert f"{mine}pair-s1 | *not scored* | - | 2 runs | 3.0 min |" in rows
