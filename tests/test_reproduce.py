"""`vislab data demo` and `vislab reproduce`: every step runs once, a re-run skips what exists."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from vislab.cli import main
from vislab.course.reproduce import PROFILES, Recipe
from vislab.ensembles import is_ensemble, read_members


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    assert main(["data", "demo", str(root)]) == 0
    return root


def test_demo_data_is_the_digits_in_the_course_layout(demo_data, capsys):
    train = sorted((demo_data / "p1_data" / "train_50").glob("*.png"))
    val = sorted((demo_data / "p1_data" / "val_50").glob("*.png"))
    assert len(train) + len(val) == 1797  # every scikit-learn digit, once
    assert {p.name.split("_")[0] for p in val} == {str(c) for c in range(10)}
    img = np.asarray(Image.open(val[0]))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and img.max() > 200
    with (demo_data / "p1_data" / "val_gt.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["filename"] for r in rows) == [p.name for p in val]
    assert all(r["filename"].split("_")[0] == r["label"] for r in rows)
    assert len(list((demo_data / "p2_data" / "validation").glob("*_mask.png"))) == 8
    assert main(["data", "demo", str(demo_data)]) == 2  # never over existing data
    assert "already exists" in capsys.readouterr().err


def test_demo_data_holds_a_set_of_its_own_with_named_classes_and_ignored_pixels(demo_data):
    from vislab.config import load_config
    from vislab.data.synthetic import SCENE_CLASSES, SCENE_PALETTE

    own = demo_data / "own_segmentation"
    recipe = load_config(REPO / "configs" / "own_segmentation_example.yaml").data
    assert recipe.classes == list(SCENE_CLASSES)  # the recipe declares the data's classes
    assert [tuple(c) for c in recipe.palette] == list(SCENE_PALETTE)
    for split, n in (("train", 48), ("val", 8)):
        images = sorted(p.stem for p in (own / split / "images").glob("*.png"))
        masks = sorted((own / split / "masks").glob("*.png"))
        assert len(images) == n and [p.stem for p in masks] == images
        mask = Image.open(masks[0])
        assert mask.mode == "P"  # palette-mode index masks, drawn in the recipe's colours
        colours = np.asarray(mask.getpalette()[:9]).reshape(3, 3)
        assert [tuple(c) for c in colours.tolist()] == list(SCENE_PALETTE)
        values = np.concatenate([np.asarray(Image.open(p)).ravel() for p in masks])
        assert set(np.unique(values).tolist()) == {0, 1, 2, 255}  # every class, and ignored


def _steps(out: str) -> dict[str, str]:
    """{step name: "ran" | "skipped"} from reproduce's log."""
    found = re.findall(r"^== \[\d+/\d+\] (.+?)(: done before, skipped)?$", out, re.M)
    return {name: "skipped" if skipped else "ran" for name, skipped in found}


def test_reproduce_runs_every_step_then_skips_what_exists(demo_data, tmp_path, capsys):
    args = ["reproduce", str(demo_data), "--profile", "demo", "--out", str(tmp_path)]
    args += ["--configs", str(REPO / "configs"), "--epochs", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    first = _steps(printed)
    # the ensemble recipe's runs are runs of its folder, then the ensemble is scored
    members = [f"p2_ensemble/{m.name}" for m in read_members(REPO / "configs/p2_ensemble.yaml")]
    runs = [r.config for r in PROFILES["demo"] if r.config != "p2_ensemble"] + members
    assert len(first) == 3 * len(runs) + 2 and set(first.values()) == {"ran"}
    assert {f"train {members[-1]}", "ensemble p2_ensemble"} <= set(first)
    for run in runs:
        assert (tmp_path / run / "checkpoints" / "best.ckpt").is_file()
        assert (tmp_path / run / "val_eval" / "metrics.json").is_file()
    scored = json.loads((tmp_path / "p2_ensemble" / "val_eval" / "metrics.json").read_text())
    said = printed.index("\nensemble:\n")  # then the course's lines of the ensemble's score
    assert printed.index(f"mean_iou: {scored['miou']:f}", said) > said
    assert len(list((tmp_path / "p2_ensemble" / "val_masks").glob("*.png"))) == 8
    assert (tmp_path / "p1_model_a" / "val_pred.csv").is_file()
    assert len(list((tmp_path / "p2_cpu" / "val_masks").glob("*.png"))) == 8
    assert (tmp_path / "p1_cpu" / "embed" / "tsne.png").is_file()
    assert (tmp_path / "p2_deeplabv3" / "progress.png").is_file()
    html = (tmp_path / "report" / "report.html").read_text()
    assert all(run.replace("/", "-") in html for run in runs)
    assert "ensemble: fpn + fpn" in html
    # one of each: the course's data and a set of its own, each in its own part
    assert "<h2>Problem 2: land-cover segmentation</h2>" in html
    assert "<h2>Segmentation of 3 classes (background, road, building) on own_segmentation" in html
    own = tmp_path / "own_segmentation_example"
    assert json.loads((own / "val_eval" / "metrics.json").read_text())["iou"].keys() == {
        "background",
        "road",
        "building",
    }
    assert len(list((own / "val_masks").glob("*.png"))) == 8

    # an interrupted reproduce: only the missing results are made again; the report always
    (tmp_path / "p2_cpu" / "progress.json").unlink()
    stamp = (tmp_path / "p1_cpu" / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    assert main(args) == 0
    second = _steps(capsys.readouterr().out)
    assert {k for k, v in second.items() if v == "ran"} == {"progress p2_cpu", "report"}
    assert (tmp_path / "p2_cpu" / "progress.json").is_file()
    assert (tmp_path / "p1_cpu" / "checkpoints" / "best.ckpt").stat().st_mtime_ns == stamp

    # other settings over an existing run: refused with the difference, nothing retrained
    assert main(args[:-1] + ["2"]) == 2
    assert "trainer.epochs: 1 -> 2" in capsys.readouterr().err


def test_the_cpu_profile_trains_the_models_the_course_scripts_predict_with():
    for problem, script in (("p1", "hw1_1.sh"), ("p2", "hw1_2.sh")):
        text = (REPO / script).read_text()
        default = re.search(r"CKPT:-\$here/runs/(\w+)\}", text).group(1)
        assert Recipe(default, problem) in PROFILES["cpu"]
        assert is_ensemble(REPO / "configs" / f"{default}.yaml")  # the best recipes


def test_reproduce_checks_the_data_before_training(tmp_path, capsys):
    (tmp_path / "p1_data").mkdir()
    assert main(["reproduce", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "p1_data/train_50 is missing" in err
    assert not (tmp_path / "out").exists()


def test_missing_pretrained_weights_stop_the_plan_before_any_training(
    demo_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))  # and no download
    out = tmp_path / "out"
    args = ["reproduce", str(demo_data), "--profile", "paper", "--out", str(out)]
    assert main([*args, "--configs", str(REPO / "configs")]) == 2
    err = capsys.readouterr().err
    assert "torchvision/resnext101_64x4d: no weights 'imagenet' here" in err
    assert str(tmp_path / "empty_cache") in err
    assert not out.exists()
