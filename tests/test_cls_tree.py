"""A classification data set of the user's own: ImageFolder trees of named classes found under
`--data ROOT`, trained with a course recipe whose head follows the classes found."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REPO
from PIL import Image

from vislab.cli import main
from vislab.config import DataConfig
from vislab.data.synthetic import grating_images
from vislab.errors import VislabError

CLASSES = ["cat", "dog", "eel", "fox", "owl"]


def write_tree(root: Path, split: str, per_class: int, size: int = 48, seed: int = 0) -> None:
    """root/split/<class>/<i>.png for every class of CLASSES."""
    images, labels = grating_images(len(CLASSES), per_class, size, seed)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / split / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """train/ and val/ trees of the five named classes, 48x48 images."""
    root = tmp_path_factory.mktemp("tree")
    write_tree(root, "train", per_class=4, seed=1)
    write_tree(root, "val", per_class=2, seed=2)
    return root


def _train(data: Path, out: Path, *sets: str, recipe: Path | None = None) -> list[str]:
    recipe = recipe or REPO / "configs" / "p1_cpu.yaml"
    args = ["train", str(recipe), "--data", str(data), "--out", str(out), "--epochs", "1"]
    for s in ("data.batch_size=8", "trainer.threads=1", "trainer.progress_bar=false", *sets):
        args += ["--set", s]
    return args


@pytest.mark.parametrize("recipe", ["p1_cpu.yaml", "p1_model_a.yaml"])
def test_a_course_recipe_trains_a_named_48px_tree_with_a_head_of_its_classes(
    tree, tmp_path, recipe
):
    from vislab.infer.checkpoint import load_model

    out = tmp_path / "run"
    assert main(_train(tree, out, recipe=REPO / "configs" / recipe)) == 0
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["vislab"]["classes"] == sorted(CLASSES)
    model, _ = load_model(out / "checkpoints" / "best.ckpt", "classification")
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 48, 48)).shape == (1, len(CLASSES))
    saved = (out / "config.yaml").read_text()
    assert "train: train\n" in saved and "val: val\n" in saved  # the folders found, named
    saved = (out / "config.yaml").read_text()
    assert "train: train\n" in saved and "val: val\n" in saved  # the folders found, named


def test_a_recipe_fixing_another_number_of_classes_is_one_line(tree, tmp_path, capsys):
    recipe = tmp_path / "fixed.yaml"
    text = (REPO / "configs" / "p1_cpu.yaml").read_text()
    recipe.write_text(text.replace("model:\n", "model:\n  num_classes: 50\n", 1))
    assert main(_train(tree, tmp_path / "run", recipe=recipe)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.num_classes" in err and "50" in err


def test_a_labels_csv_for_a_tree_is_refused_not_left_unread(tree, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\n0.png,3\n")
    assert main(_train(tree, tmp_path / "run", f"data.val_labels={labels}")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{tree / 'val'} is a class-folder tree, whose folders name the labels; the " in err
    assert f"labels CSV {labels} (data.val_labels) would go unread: leave it out" in err


def test_declared_classes_other_than_the_folders_are_one_line(tree, tmp_path, capsys):
    declared = "data.classes=[dog, cat, eel, fox, owl]"
    assert main(_train(tree, tmp_path / "run", declared)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "are not its class folders" in err


@pytest.mark.parametrize(
    "folders, found",
    [
        (["train_50", "val_50", "train", "val"], ("train_50", "val_50")),
        (["train", "val", "validation"], ("train", "val")),
        (["train", "validation"], ("train", "validation")),
    ],
)
def test_data_root_finds_the_usual_layouts_in_order(tmp_path, folders, found):
    for name in folders:
        (tmp_path / name).mkdir()
    d = DataConfig(root=str(tmp_path)).located()
    assert (d.train, d.val) == found


def test_explicit_folders_win_and_a_missing_layout_names_what_was_looked_for(tmp_path):
    for name in ("train", "val", "holdout"):
        (tmp_path / name).mkdir()
    d = DataConfig(root=str(tmp_path), val="holdout").located()
    assert (d.train, d.val) == ("train", "holdout")
    (tmp_path / "val").rmdir()
    (tmp_path / "train").rename(tmp_path / "training")
    with pytest.raises(VislabError) as e:
        DataConfig(root=str(tmp_path)).located()
    message = str(e.value)
    assert "\n" not in message and str(tmp_path) in message
    for looked in ("train_50/+val_50/", "train/+val/", "train/+validation/"):
        assert looked in message
