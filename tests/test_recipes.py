"""The report's GPU recipes run end to end on tiny data (one short epoch each, from scratch)."""

import pytest
import torch
from conftest import REPO

from vislab.cli import main
from vislab.config import load_config
from vislab.models.registry import weights_source

IMAGENET_MEAN = [0.485, 0.456, 0.406]

QUICK = [
    "--epochs",
    "1",
    "--set",
    "trainer.threads=1",
    "--set",
    "trainer.progress_bar=false",
    "--set",
    "model.kwargs.weights=null",
]


@pytest.mark.slow
def test_model_b_recipe_trains_resnext_on_32x32_images(p1_tiny, tmp_path):
    out = tmp_path / "b"
    args = [
        "train",
        str(REPO / "configs" / "p1_model_b.yaml"),
        "--data",
        str(p1_tiny),
        "--out",
        str(out),
        *QUICK,
        "--set",
        "model.kwargs.input_size=32",
        "--set",
        "data.max_per_class=4",
        "--set",
        "data.batch_size=8",
    ]
    assert main(args) == 0
    meta = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)["vislab"]
    assert meta["model"] == "torchvision/resnext101_64x4d"
    # from scratch here, so the data's own statistics; with the recipe's weights, theirs
    assert meta["mean"] != IMAGENET_MEAN
    recipe = load_config(REPO / "configs" / "p1_model_b.yaml")
    assert weights_source(recipe.model.name, recipe.model.kwargs).preprocessing().mean == (
        IMAGENET_MEAN
    )


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["p2_fcn32s.yaml", "p2_deeplabv3.yaml"])
def test_segmentation_recipes_train(p2_tiny, tmp_path, recipe):
    out = tmp_path / "s"
    args = [
        "train",
        str(REPO / "configs" / recipe),
        "--data",
        str(p2_tiny),
        "--out",
        str(out),
        *QUICK,
        "--set",
        "data.limit=4",
        "--set",
        "data.batch_size=2",
    ]
    assert main(args) == 0
    assert (out / "checkpoints" / "last.ckpt").exists()
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "val_miou" in header
