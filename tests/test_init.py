"""model.init: a run that starts from the weights of an earlier run (a second training stage)."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO, seg_train_args

from vislab.cli import main
from vislab.config import load_config, save_config
from vislab.train.run import config_changes


@pytest.fixture(scope="module")
def first(p2_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "first"
    assert main(seg_train_args(p2_tiny, out, 1)) == 0
    return out / "checkpoints" / "last.ckpt"


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_the_second_stage_starts_from_the_first_stages_weights_and_statistics(
    first, p2_tiny, tmp_path
):
    # learning rate 0: the parameters the second run ends with are the ones it started from
    out = tmp_path / "second"
    args = seg_train_args(p2_tiny, out, 1, "--set", f"model.init={first}", "--set", "optim.lr=0")
    assert main(args) == 0
    a, b = _load(first), _load(out / "checkpoints" / "last.ckpt")
    names = [n for n, p in a["state_dict"].items() if p.is_floating_point() and "running" not in n]
    assert len(names) > 50
    for n in names:
        assert torch.equal(a["state_dict"][n], b["state_dict"][n]), n
    assert b["vislab"]["mean"] == a["vislab"]["mean"]
    assert b["vislab"]["config"]["model"]["init"] == str(first)


def test_a_fresh_run_differs_from_it(first, p2_tiny, tmp_path):
    """The check above can fail: without model.init the same run starts elsewhere."""
    out = tmp_path / "fresh"
    assert main(seg_train_args(p2_tiny, out, 1, "--set", "optim.lr=0")) == 0
    a, b = _load(first), _load(out / "checkpoints" / "last.ckpt")
    weight = "model.net.classifier.low_classifier.weight"
    assert not torch.equal(a["state_dict"][weight], b["state_dict"][weight])


HOLDS = "holds lraspp_mobilenet_v3 with 7 classes; the recipe trains"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["model.name=deeplabv3_mobilenet_v3"], f"{HOLDS} deeplabv3_mobilenet_v3 with 7"),
        (["model.num_classes=5"], f"{HOLDS} lraspp_mobilenet_v3 with 5"),
    ],
)
def test_weights_of_another_model_are_refused_before_any_data_is_read(
    first, tmp_path, capsys, sets, message
):
    missing = tmp_path / "no-data"  # never read: the checkpoint is checked first
    extra = ["--set", f"model.init={first}"]
    for s in sets:
        extra += ["--set", s]
    assert main(seg_train_args(missing, tmp_path / "run", 1, *extra)) == 2
    err = capsys.readouterr().err
    assert f"model.init: {first} {message}" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["missing.ckpt", "model.onnx"])
def test_a_missing_checkpoint_or_an_onnx_file_is_refused(p2_tiny, tmp_path, capsys, name):
    path = tmp_path / name
    if name.endswith(".onnx"):
        path.write_bytes(b"onnx")
    args = seg_train_args(p2_tiny, tmp_path / "run", 1, "--set", f"model.init={path}")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(path) in err and ("not found" in err or "ONNX" in err)


def test_a_resume_compares_the_init_path_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = REPO / "configs" / "p2_cpu.yaml"
    save_config(load_config(recipe, ["model.init=runs/a/last.ckpt"]), tmp_path / "config.yaml")
    same = load_config(recipe, [f"model.init={tmp_path}/runs/a/last.ckpt"])
    other = load_config(recipe, ["model.init=runs/b/last.ckpt"])
    assert config_changes(same, tmp_path) == []
    assert config_changes(other, tmp_path) == [
        f"model.init: '{tmp_path}/runs/a/last.ckpt' -> '{tmp_path}/runs/b/last.ckpt'"
    ]
