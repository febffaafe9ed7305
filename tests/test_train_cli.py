"""Train -> predict -> evaluate through the CLI and hw1_1.sh, on tiny generated data."""

import contextlib
import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, jolted_checkpoint, train_args

from vislab.cli import main


@pytest.fixture(scope="module")
def run(p1_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "a"
    assert main(train_args(p1_tiny, out, 3)) == 0
    return out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_folder_holds_config_metrics_and_checkpoints(run):
    assert (run / "config.yaml").read_text().count("num_classes: 4") == 1
    rows = _rows(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "train_img_per_s"} <= set(
        rows[0]
    )
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.ckpt", "epoch_001.ckpt", "epoch_002.ckpt", "epoch_003.ckpt", "last.ckpt"]


def test_every_checkpoint_loads_with_weights_only_and_best_is_the_best_epoch(run):
    rows = _rows(run / "metrics.csv")
    accs = [float(r["val_acc"]) for r in rows]
    best_epoch = accs.index(max(accs)) + 1
    for p in (run / "checkpoints").iterdir():
        ckpt = torch.load(p, weights_only=True)
        assert ckpt["vislab"]["model"] == "model_a" and ckpt["vislab"]["classes"] == list("0123")
    assert (
        torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["epoch"] + 1 == best_epoch
    )
    snap = torch.load(run / "checkpoints" / "epoch_002.ckpt", weights_only=True)
    assert snap["epoch"] == 2 and snap["metrics"]["val_acc"] == pytest.approx(accs[1], abs=1e-6)


def test_predict_writes_the_course_csv_and_evaluate_agrees_with_training(run, p1_tiny, tmp_path):
    out = tmp_path / "new" / "deeper" / "pred.csv"  # the parent folders do not exist yet
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(run / "checkpoints/best.ckpt"),
                "--images",
                str(p1_tiny / "val_50"),
                "--out",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "filename,label"
    names = [line.split(",")[0] for line in lines[1:]]
    assert names == sorted(p.name for p in (p1_tiny / "val_50").iterdir())
    assert all(line.split(",")[1] in "0123" for line in lines[1:])
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(out),
                "--gt",
                str(p1_tiny / "val_gt.csv"),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    import json

    acc = json.loads((tmp_path / "ev" / "metrics.json").read_text())["accuracy"]
    best = max(float(r["val_acc"]) for r in _rows(run / "metrics.csv"))
    assert acc == pytest.approx(best, abs=1e-6)  # same weights, same data, same number


def test_hw1_1_sh_follows_the_course_contract(run, p1_tiny, tmp_path):
    # hw1_1.sh writes what `vislab predict --tta` writes, a model whose mirror view disagrees
    ckpt = jolted_checkpoint(run / "checkpoints/best.ckpt", tmp_path / "jolted.ckpt")
    out = tmp_path / "missing_dir" / "out.csv"
    env = dict(os.environ, VISLAB_P1_CKPT=str(ckpt))
    subprocess.run(
        ["bash", str(REPO / "hw1_1.sh"), str(p1_tiny / "val_50"), str(out)],
        check=True,
        env=env,
        capture_output=True,
    )
    predict = ["predict", "--ckpt", str(ckpt), "--images", str(p1_tiny / "val_50"), "--out"]
    main([*predict, str(tmp_path / "plain.csv")])
    main([*predict, str(tmp_path / "tta.csv"), "--tta"])
    assert (tmp_path / "plain.csv").read_text() != (tmp_path / "tta.csv").read_text()
    assert out.read_text() == (tmp_path / "tta.csv").read_text()
    bad = subprocess.run(["bash", str(REPO / "hw1_1.sh"), "only_one_arg"], capture_output=True)
    assert bad.returncode == 2 and b"usage" in bad.stderr


def test_existing_run_folder_needs_resume_and_the_same_config(run, p1_tiny, capsys):
    assert main(train_args(p1_tiny, run, 3)) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert main(train_args(p1_tiny, run, 3, "--resume", "--set", "optim.lr=0.5")) == 2
    assert "optim.lr: 0.01 -> 0.5" in capsys.readouterr().err
    # the same run seen from elsewhere, with other threads, its data from the disk cache and
    # a logger: nothing it computes changes; complete, so nothing is retrained
    before = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    rel = os.path.relpath(p1_tiny, REPO)
    with contextlib.chdir(REPO):
        runtime = ["trainer.threads=2", "data.store=memory", "trainer.loggers=[csv]"]
        args = train_args(Path(rel), run, 3, "--resume", *(f"--set={s}" for s in runtime))
        assert main(args) == 0
    assert "is complete (3 epochs); nothing to train" in capsys.readouterr().out
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before


@pytest.mark.parametrize("epoch", [10**9, 3, -5, "abc", 1.5, True, None])
def test_resume_refuses_a_last_checkpoint_whose_epoch_is_edited(
    run, p1_tiny, tmp_path, capsys, epoch
):
    # 3 (the 0-based epoch after the last of 3) or 10**9 would read as a finished run, -5 as
    # one to train from before its start
    copy = tmp_path / "a"
    shutil.copytree(run, copy)
    last = copy / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 2  # the run's own: 3 epochs done
    ckpt["epoch"] = epoch
    torch.save(ckpt, last)
    assert main(train_args(p1_tiny, copy, 3, "--resume")) == 2
    err = capsys.readouterr().err
    assert f"says it ends epoch {epoch!r} (0-based), but a checkpoint of this run ends an epoch " \
        "from 0 to 2" in err  # fmt: skip
    assert "Traceback" not in err and "nothing to train" not in err


def test_predict_refuses_a_missing_checkpoint(tmp_path, p1_tiny, capsys):
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(tmp_path / "x.ckpt"),
                "--images",
                str(p1_tiny / "val_50"),
                "--out",
                str(tmp_path / "p.csv"),
            ]
        )
        == 2
    )
    assert "checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_a_moved_run_keeps_its_best_score(run, tmp_path):
    # Lightning drops the best score of a checkpoint written in another folder; resuming a
    # copied run then let its first epoch replace best.ckpt even when it was worse
    from vislab.train.callbacks import RunCheckpoint

    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    ckpt = torch.load(moved / "checkpoints" / "last.ckpt", weights_only=True)
    state = next(v for k, v in ckpt["callbacks"].items() if "'monitor': 'val_acc'" in k)
    assert Path(state["dirpath"]) == (run / "checkpoints").resolve()
    cb = RunCheckpoint(
        dirpath=moved / "checkpoints", filename="best", monitor="val_acc", mode="max"
    )
    assert ckpt["callbacks"][cb.state_key] is state  # Lightning finds its state on resume
    cb.load_state_dict(state)
    best = max(float(r["val_acc"]) for r in _rows(run / "metrics.csv"))
    assert float(cb.best_model_score) == pytest.approx(best, abs=1e-6)
    assert cb.best_model_path == str((moved / "checkpoints" / "best.ckpt").resolve())
    assert list(cb.best_k_models) == [cb.best_model_path]


def test_a_checkpoint_write_that_fails_midway_leaves_the_previous_one(p1_tiny, tmp_path, capsys):
    # Every file write into checkpoints/ after the first epoch's three (snapshot, best, last)
    # writes half its bytes and then fails, as a full disk or a kill would leave it.
    import builtins

    out = tmp_path / "run"
    ckpt_dir = (out / "checkpoints").resolve()
    real_open, writes = builtins.open, []

    class HalfWrite:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device (simulated)")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def faulty_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if ("w" in mode or "x" in mode) and Path(file).resolve().parent == ckpt_dir:
            writes.append(Path(file).name)
            if len(writes) > 3:
                return HalfWrite(f)
        return f

    builtins.open = faulty_open
    try:
        code = main(train_args(p1_tiny, out, 2))
    finally:
        builtins.open = real_open
    assert code == 2 and "No space left on device" in capsys.readouterr().err
    assert len(writes) > 3  # the failure really happened in epoch 2
    names = sorted(p.name for p in ckpt_dir.iterdir())
    assert names == ["best.ckpt", "epoch_001.ckpt", "last.ckpt"]  # no half file, no temp
    for name in names:
        state = torch.load(ckpt_dir / name, weights_only=True)
        assert state["epoch"] in (0, 1)  # epoch 1: Lightning's 0-based, the snapshot's 1-based
    assert main(train_args(p1_tiny, out, 2, "--resume")) == 0  # and the run goes on from there
    assert [r["epoch"] for r in _rows(out / "metrics.csv")] == ["1", "2"]


def test_mixup_and_cutmix_raise_the_training_loss_of_the_same_seeded_run(p1_tiny, tmp_path):
    """The same weights meet the same batches; mixed labels are harder to fit."""
    runs = {}
    for name, extra in (("plain", []), ("mixed", ["data.mixup=0.4", "data.cutmix=1.0"])):
        out = tmp_path / name
        sets = [a for s in extra for a in ("--set", s)]
        assert main(train_args(p1_tiny, out, 1, *sets)) == 0
        runs[name] = _rows(out / "metrics.csv")[0]
    assert float(runs["mixed"]["train_loss"]) > float(runs["plain"]["train_loss"])


def test_auto_augment_and_random_erasing_reach_every_training_batch(p1_tiny, tmp_path, monkeypatch):
    """The recipe's policy and erasing probability reach the training step for every batch
    (validation is not augmented), the run records them and the report names them."""
    import vislab.train.classification as classification
    from vislab.report.result import _augmentation

    calls = []

    def spy(name, real):
        def wrapped(x, setting, generator):
            calls.append((name, setting, x.dtype))
            return real(x, setting, generator)

        return wrapped

    monkeypatch.setattr(classification, "auto_augment", spy("auto", classification.auto_augment))
    monkeypatch.setattr(
        classification, "random_erasing", spy("erase", classification.random_erasing)
    )
    out = tmp_path / "augmented"
    sets = ["data.auto_augment=trivialaugment", "data.random_erasing=0.25"]
    assert main(train_args(p1_tiny, out, 1, *[a for s in sets for a in ("--set", s)])) == 0
    batches = 64 // 16  # 4 classes x 16 train images, batch 16
    assert calls == [("auto", "trivialaugment", torch.uint8), ("erase", 0.25, torch.float32)] * (
        batches
    )
    data = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert (data["auto_augment"], data["random_erasing"]) == ("trivialaugment", 0.25)
    said = _augmentation(data)
    assert "trivialaugment per image" in said and "random erasing (p 0.25)" in said


def test_the_head_follows_the_classes_the_data_holds(p1_tiny, tmp_path, capsys):
    """A recipe without model.num_classes trains the data's 4 classes; one that fixes 5 is a
    one-line error before any checkpoint is written."""
    out = tmp_path / "follows"
    assert main(train_args(p1_tiny, out, 1, "--set", "model.num_classes=null")) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["vislab"]["num_classes"] == 4 and ckpt["vislab"]["classes"] == list("0123")
    assert ckpt["state_dict"]["model.fc3.weight"].shape[0] == 4
    assert "num_classes: null" in (out / "config.yaml").read_text()  # the recipe as given
    capsys.readouterr()
    assert main(train_args(p1_tiny, tmp_path / "five", 1, "--set", "model.num_classes=5")) == 2
    err = capsys.readouterr().err
    assert "config key model.num_classes: the recipe fixes 5 classes but the data holds 4" in err
    assert err.count("\n") == 1 and not (tmp_path / "five" / "checkpoints").exists()


def test_resume_refuses_a_checkpoint_of_another_run(p1_tiny, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(train_args(p1_tiny, a, 1)) == 0
    assert main(train_args(p1_tiny, b, 1)) == 0
    ids = [json.loads((r / "run.json").read_text())["id"] for r in (a, b)]
    assert ids[0] != ids[1]
    for r, i in zip((a, b), ids, strict=True):  # every checkpoint carries its run's id
        for ckpt in (r / "checkpoints").glob("*.ckpt"):
            assert torch.load(ckpt, weights_only=True)["vislab"]["run_id"] == i
    history = (a / "metrics.csv").read_bytes()
    shutil.copy(b / "checkpoints" / "last.ckpt", a / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    assert main(train_args(p1_tiny, a, 1, "--resume")) == 2
    err = capsys.readouterr().err
    last = a / "checkpoints" / "last.ckpt"
    assert f"--resume: {last} is a checkpoint of run {ids[1]}, not of {a} (run {ids[0]})" in err
    assert (a / "metrics.csv").read_bytes() == history


def test_resume_takes_the_same_data_from_where_it_moved(p1_tiny, tmp_path, capsys):
    data, moved, other = tmp_path / "data", tmp_path / "moved", tmp_path / "other"
    shutil.copytree(p1_tiny, data)
    out = tmp_path / "run"
    assert main(train_args(data, out, 1)) == 0
    data.rename(moved)
    shutil.copytree(moved, other)
    next((other / "val_50").iterdir()).unlink()  # another set of files
    capsys.readouterr()
    assert main(train_args(other, out, 1, "--resume")) == 2
    assert f"data.root: '{data}' -> '{other}'" in capsys.readouterr().err
    assert main(train_args(moved, out, 1, "--resume")) == 0
    said = capsys.readouterr().out
    assert f"data.root {data} -> {moved}, the same files" in said and "is complete" in said


def test_a_run_folder_among_the_data_is_refused_before_anything_is_written(tmp_path, capsys):
    from vislab.data.synthetic import write_p1_layout

    data = write_p1_layout(tmp_path / "d", num_classes=2, per_class=4)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    for out, message in (
        (data, "holds"),  # the root: checkpoints among the images
        (data / "train_50", "which this command reads"),
        (data / "train_50" / "run", "is inside"),  # a class tree would read it as a class
        (data / "val_50" / "run", "is inside"),
    ):
        assert main(train_args(data, out, 1)) == 2
        err = capsys.readouterr().err
        assert f"--out {out}" in err and message in err, err
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_a_constant_channel_is_normalised_with_std_1_and_says_so(p1_tiny, tmp_path):
    # a band that holds one value (an empty third band of a 2-band image) has std 0: divided
    # by it, every input would be NaN and the run would stop blaming the learning rate
    from PIL import Image

    data = tmp_path / "d"
    shutil.copytree(p1_tiny, data)
    for png in data.rglob("*.png"):
        rgb = np.array(Image.open(png).convert("RGB"))
        rgb[..., 2] = 7
        Image.fromarray(rgb).save(png)
    from vislab.errors import VislabWarning

    with pytest.warns(VislabWarning, match=r"channel\(s\) 2 of the train images hold one value"):
        assert main(train_args(data, tmp_path / "run", 1)) == 0
    meta = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["vislab"]
    assert meta["std"][2] == 1.0 and meta["std"][0] > 0 and meta["mean"][2] == 7 / 255
    metrics = (tmp_path / "run" / "metrics.csv").read_text()
    assert "nan" not in metrics.lower()
