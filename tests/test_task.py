"""The Lightning modules take their hyperparameters as plain arguments: built without a
recipe, from a recipe through from_config, and saved in the checkpoint as Lightning saves them."""

import pytest
import torch
from conftest import REPO, seg_meta, train_args

from vislab.cli import main
from vislab.config import load_config
from vislab.errors import VislabError
from vislab.infer.meta import ModelMeta
from vislab.train.classification import ClassificationTask
from vislab.train.segmentation import SegmentationTask


def test_a_segmentation_task_is_built_without_a_recipe():
    cfg = load_config(REPO / "configs/p2_cpu.yaml")
    task = SegmentationTask(seg_meta(cfg), model="lraspp_mobilenet_v3", lr=0.02, hflip=True)
    assert task.hparams.lr == 0.02 and task.hparams.hflip and not task.hparams.vflip
    assert "meta" not in task.hparams  # the metadata travels in its own checkpoint entry
    task.eval()
    with torch.no_grad():  # one output channel per class of the metadata
        assert task.model(torch.zeros(1, 3, 64, 64))["out"].shape[1] == 7


def test_from_config_gives_the_recipes_values():
    cfg = load_config(
        REPO / "configs/p2_cpu.yaml",
        ["optim.lovasz_weight=0.5", "data.vflip=true", "optim.lr=0.003", "seed=7"],
    )
    h = SegmentationTask.from_config(cfg, seg_meta(cfg)).hparams
    assert (h.lovasz_weight, h.vflip, h.lr, h.seed) == (0.5, True, 0.003, 7)
    assert (h.model, h.model_kwargs) == (cfg.model.name, dict(cfg.model.kwargs))
    assert (h.optimizer, h.schedule, h.epochs) == (cfg.optim.name, cfg.optim.schedule, 60)


def _classifier(**kw) -> ClassificationTask:
    meta = ModelMeta(
        "classification", "model_a", 3, {}, ["a", "b", "c"], [0.5] * 3, [0.25] * 3, [32, 32]
    )
    return ClassificationTask(meta, model="model_a", **kw)


def test_a_classification_task_trains_one_step_from_its_arguments():
    task = _classifier(lr=0.1, hflip=True, crop_padding=2, mixup=0.2)
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 0])
    task.log = lambda *a, **k: None  # no trainer to log to
    loss = task.training_step((x, y), 0)
    assert torch.isfinite(loss) and loss.requires_grad


@pytest.mark.parametrize("kw", [{"optimizer": "adam"}, {"schedule": "step"}])
def test_an_unknown_optimizer_or_schedule_is_refused(kw):
    from vislab.train.optim import build_optimizer

    h = dict(name="sgd", lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0, epochs=1)
    h["schedule"] = "constant"
    h.update({"name" if k == "optimizer" else k: v for k, v in kw.items()})
    with pytest.raises(VislabError, match="sgd and adamw"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], 10, **h)


def test_the_checkpoint_holds_the_hyperparameters(p1_tiny, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(p1_tiny, out, 1, "--set", "optim.lr=0.02")) == 0
    ckpt = torch.load(out / "checkpoints/best.ckpt", map_location="cpu", weights_only=True)
    h = ckpt["hyper_parameters"]
    cfg = load_config(out / "config.yaml")
    assert h["lr"] == 0.02
    assert (h["model"], h["lr"], h["epochs"]) == (cfg.model.name, cfg.optim.lr, cfg.trainer.epochs)
    assert h["hflip"] == cfg.data.hflip and "meta" not in h
