"""model.init: a run that starts from the weights of an earlier run (a second training stage)."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from conftest import REPO, _cli_train, seg_train_args, train_args

from vislab.cli import main
from vislab.config import load_config
from vislab.run_folder import RunFolder
from vislab.train.resume import config_changes

MEAN, STD = [0.25, 0.5, 0.75], [0.2, 0.3, 0.4]


@pytest.fixture(scope="module")
def first(p2_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "first"
    stats = ["--set", f"data.mean={MEAN}", "--set", f"data.std={STD}"]  # not the data's own
    assert main(seg_train_args(p2_tiny, out, 1, *stats)) == 0
    return out / "checkpoints" / "last.ckpt"


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def second(first, p2_tiny):
    # learning rate 0: the parameters the second run ends with are the ones it started from
    out = first.parents[2] / "second"
    args = seg_train_args(p2_tiny, out, 1, "--set", f"model.init={first}", "--set", "optim.lr=0")
    assert main(args) == 0
    return out


def test_the_second_stage_starts_from_the_first_stages_weights_and_statistics(first, second):
    a, b = _load(first), _load(second / "checkpoints" / "last.ckpt")
    names = [n for n, p in a["state_dict"].items() if p.is_floating_point() and "running" not in n]
    assert len(names) > 50
    for n in names:
        assert torch.equal(a["state_dict"][n], b["state_dict"][n]), n
    # the second run sets no statistics: it takes the first's, not its data's
    assert a["vislab"]["mean"] == MEAN and a["vislab"]["std"] == STD
    assert b["vislab"]["mean"] == MEAN and b["vislab"]["std"] == STD
    assert b["vislab"]["config"]["model"]["init"] == str(first)


def _copy(run, to, epoch_s: float, init=None):
    """run copied to to, every epoch taking epoch_s seconds, model.init replaced by init."""
    shutil.copytree(run, to)
    header, *rows = (to / "metrics.csv").read_text().splitlines()
    col = header.split(",").index("epoch_s")
    rows = [
        ",".join(f"{epoch_s}" if i == col else v for i, v in enumerate(r.split(","))) for r in rows
    ]
    (to / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")
    if init is not None:
        cfg = yaml.safe_load((to / "config.yaml").read_text())
        cfg["model"]["init"] = str(init)
        (to / "config.yaml").write_text(yaml.safe_dump(cfg))
    return to


def test_the_report_names_the_first_stage_and_counts_its_time(first, second, tmp_path):
    a = _copy(first.parents[1], tmp_path / "a", 540.0)  # 1 epoch: 9 min
    b = _copy(second, tmp_path / "b", 180.0, init=a / "checkpoints" / "last.ckpt")  # 3 min
    assert main(["report", str(b), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    first_stage = a / "checkpoints" / "last.ckpt"
    role = f"CPU stand-in for Model B (LR-ASPP MobileNetV3), second stage of {first_stage}"
    assert role in html
    assert '<td class="num">12.0 min</td>' in html
    assert f"Training took 12.0 min, with the run its weights came from ({a}" in html
    assert "Missing: the run folder" not in html


def test_the_report_says_when_the_first_stage_is_gone(second, tmp_path):
    gone = tmp_path / "gone" / "checkpoints" / "last.ckpt"
    b = _copy(second, tmp_path / "b", 180.0, init=gone)
    assert main(["report", str(b), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert f"Missing: the run folder of {gone} (train time leaves that stage out)" in html
    assert '<td class="num">3.0 min</td>' in html
    assert f"Training took 3.0 min in this stage alone; its weights came from {gone}," in html


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
        (["model.name=deeplabv3_resnet50"], f"{HOLDS} deeplabv3_resnet50 with 7"),
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


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.ckpt", "checkpoint not found: {}"),
        ("model.onnx", "model.init: {} is an ONNX file"),
    ],
)
def test_a_missing_checkpoint_or_an_onnx_file_is_refused_before_the_data(
    tmp_path, capsys, name, message
):
    path = tmp_path / name
    if name.endswith(".onnx"):
        path.write_bytes(b"onnx")
    args = seg_train_args(tmp_path / "no-data", tmp_path / "run", 1, "--set", f"model.init={path}")
    assert main(args) == 2
    assert message.format(path) in capsys.readouterr().err


def test_weights_of_other_model_settings_are_refused_before_the_data(p1_tiny, tmp_path, capsys):
    first = tmp_path / "model_a"
    assert main(train_args(p1_tiny, first, 1)) == 0
    ckpt = first / "checkpoints" / "last.ckpt"
    sets = ["--set", f"model.init={ckpt}", "--set", "model.kwargs.batch_norm=false"]
    assert main(train_args(tmp_path / "no-data", tmp_path / "run", 1, *sets)) == 2
    err = capsys.readouterr().err
    assert f"model.init: the weights of {ckpt} do not fit the recipe's model_a" in err
    assert "{'batch_norm': False}" in err and "Traceback" not in err


def test_a_relative_init_path_is_saved_absolute(first, p2_tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(first.parents[2])
    relative = first.relative_to(first.parents[2])
    out = tmp_path / "run"
    assert main(seg_train_args(p2_tiny, out, 1, "--set", f"model.init={relative}")) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["init"] == str(first)


def test_a_resume_compares_the_init_path_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = REPO / "configs" / "p2_cpu.yaml"
    RunFolder(tmp_path).write_config(load_config(recipe, ["model.init=runs/a/last.ckpt"]))
    same = load_config(recipe, [f"model.init={tmp_path}/runs/a/last.ckpt"])
    other = load_config(recipe, ["model.init=runs/b/last.ckpt"])
    assert config_changes(same, tmp_path) == []
    assert config_changes(other, tmp_path) == [
        f"model.init: '{tmp_path}/runs/a/last.ckpt' -> '{tmp_path}/runs/b/last.ckpt'"
    ]


def test_an_input_size_that_came_from_the_dropped_weights_must_be_set(p1_tiny, tmp_path, capsys):
    # a timm classifier's input size comes from its ImageNet weights when the recipe leaves it
    # out; model.init drops those weights, so the second stage would train at the images' own
    # 32x32 instead of the size the first one trained at
    def lite(data, out, sets):
        return main(_cli_train("p1_lite.yaml", data, out, 1, sets, []))

    tiny = ["model.num_classes=4", "data.batch_size=16"]
    first = tmp_path / "lite"
    assert lite(p1_tiny, first, [*tiny, "model.kwargs.input_size=64"]) == 0
    ckpt = first / "checkpoints" / "last.ckpt"
    sets = [*tiny, f"model.init={ckpt}", "model.kwargs.input_size=null"]
    assert lite(tmp_path / "no-data", tmp_path / "run", sets) == 2
    err = capsys.readouterr().err
    assert f"model.init: {ckpt} was trained with inputs resized to 64" in err
    assert "set model.kwargs.input_size (64 to go on at the same size)" in err
    sets[-1] = "model.kwargs.input_size=64"  # said: it trains
    assert lite(p1_tiny, tmp_path / "run", sets) == 0
