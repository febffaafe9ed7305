"""Weights whose name says CIFAR-100, used on the course's Problem 1 folders, are called out:
those images are very likely CIFAR-100's training split, val_50 included."""

import shutil

import pytest
from conftest import train_args

from vislab.cli import main
from vislab.course.leak import warn_cifar100
from vislab.errors import VislabWarning


@pytest.mark.parametrize(
    "names, folders, warned",
    [
        (["resnet18_cifar100.pth"], ["data/val_50"], True),
        (["edadaltocg/resnet18_CIFAR-100"], ["p1_data/train_50"], True),
        (["cifar_100_best.ckpt"], ["x/val_50"], True),
        (["imagenet", None], ["data/val_50"], False),  # other weights
        (["resnet18_cifar100.pth"], ["own/val"], False),  # other data
        (["resnet18_cifar10.pth"], ["data/val_50"], False),  # CIFAR-10 is not CIFAR-100
    ],
)
def test_only_cifar100_names_on_the_course_folders(names, folders, warned, recwarn):
    assert warn_cifar100(names, folders) is warned
    said = [w for w in recwarn if issubclass(w.category, VislabWarning)]
    assert len(said) == warned
    if warned:
        assert "not a measurement" in str(said[0].message)


def test_training_and_predicting_from_such_weights_warn(p1_tiny, tmp_path, recwarn):
    out = tmp_path / "run"
    assert main(train_args(p1_tiny, out, 1)) == 0
    leaked = tmp_path / "model_a_cifar100.ckpt"
    shutil.copy(out / "checkpoints" / "best.ckpt", leaked)
    second = train_args(p1_tiny, tmp_path / "second", 1, "--set", f"model.init={leaked}")
    with pytest.warns(VislabWarning, match="model_a_cifar100.ckpt says CIFAR-100"):
        assert main(second) == 0
    pred = tmp_path / "pred.csv"
    args = ["predict", "--ckpt", str(leaked), "--images", str(p1_tiny / "val_50")]
    with pytest.warns(VislabWarning, match="says CIFAR-100"):
        assert main([*args, "--out", str(pred)]) == 0
    recwarn.clear()
    plain = out / "checkpoints" / "best.ckpt"
    args = ["predict", "--ckpt", str(plain), "--images", str(p1_tiny / "val_50")]
    assert main([*args, "--out", str(pred)]) == 0
    assert not [w for w in recwarn if "CIFAR-100" in str(w.message)]
