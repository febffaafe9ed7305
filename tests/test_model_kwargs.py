"""model.kwargs are checked before any data is read: each value by the type its builder
annotates and the range its name means, a decoder's encoder by name with the closest of timm's
suggested, and what a library refuses while building is one line naming the model."""

from __future__ import annotations

import os

import pytest
import timm
import torch
from conftest import seg_train_args, train_args

from vislab.cli import main
from vislab.data.synthetic import write_p1_layout
from vislab.errors import VislabError
from vislab.models import create_model
from vislab.models.fetch import prepare


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("model_a", {"batch_norm": "false"}, "batch_norm: expected bool, got 'false'"),
        ("model_a", {"batch_norm": 0}, "batch_norm: expected bool, got 0"),
        ("model_a", {"hidden": [0, 0]}, "model.kwargs.hidden: 0 must be >= 1"),
        ("model_a", {"channels": [1, 2, 3]}, "channels: expected a list of 2 values, got [1, "),
        ("model_a", {"channels": [8, 1.5]}, "channels[1]: expected int, got 1.5"),
        ("model_a", {"in_size": 0}, "model.kwargs.in_size: 0 must be >= 4"),
        ("resnet9", {"width": True}, "model.kwargs.width: expected int, got True"),
        ("timm/resnet18", {"frozen_stages": True}, "frozen_stages: expected int, got True"),
        ("timm/resnet18", {"drop_rate": 5}, "model.kwargs.drop_rate: 5.0 must be below 1"),
        ("timm/resnet18", {"drop_path_rate": -0.1}, "drop_path_rate: -0.1 must be >= 0.0"),
        ("timm/resnet18", {"drop_rate": float("nan")}, "drop_rate: nan is not a finite number"),
        ("timm/resnet18", {"input_size": -1}, "model.kwargs.input_size: -1 must be >= 1"),
        ("timm/resnet18", {"input_size": 30000}, "input_size: 30000 must be <= 13377"),
        ("torchvision/resnet18", {"input_size": 0}, "input_size: 0 must be >= 1"),
        ("fpn", {"encoder": "timm/resnet18", "width": 0}, "model.kwargs.width: 0 must be >= 1"),
        ("unet", {"encoder": "timm/resnet18", "channels": [8, 0]}, "channels: 0 must be >= 1"),
        ("lraspp_mobilenet_v3", {"bn_momentum": 2}, "bn_momentum: 2.0 must be <= 1.0"),
    ],
)
def test_a_value_of_the_wrong_type_or_range_is_one_line(name, kwargs, message):
    with pytest.raises(VislabError, match=f"^model {name}: config key .*") as e:
        prepare(name, kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_good_values_pass_converted_where_lossless():
    assert prepare("model_a", {"hidden": [8, 4], "batch_norm": False}) == {
        "hidden": [8, 4],
        "batch_norm": False,
    }
    out = prepare("timm/resnet18", {"weights": None, "drop_rate": 0, "frozen_stages": 2})
    assert out == {"weights": None, "drop_rate": 0.0, "frozen_stages": 2}
    assert isinstance(out["drop_rate"], float)
    create_model("timm/resnet18", num_classes=2, **out)


def test_what_the_builder_refuses_is_found_before_the_data():
    # the U-Net's widths, one per encoder map, are known once the encoder is: a dry build
    with pytest.raises(VislabError, match=r"channels needs 4 widths, one per map"):
        prepare("unet", {"encoder": "timm/convnext_atto", "weights": None, "channels": [8] * 5})


def test_any_exception_of_the_library_is_one_line_naming_model_and_kwargs(monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("a value timm refuses\nand a second line")

    monkeypatch.setattr(timm, "create_model", refuse)
    with pytest.raises(VislabError) as e:
        create_model("timm/resnet18", num_classes=3, drop_rate=0.5)
    said = str(e.value)
    assert said.startswith("model timm/resnet18 with model.kwargs {") and "'drop_rate': 0.5" in said
    assert said.endswith(": a value timm refuses")
    with pytest.raises(VislabError, match="^encoder timm/resnet18 cannot give feature maps"):
        create_model("fpn", num_classes=3, encoder="timm/resnet18")


def test_frozen_stages_true_is_no_count():
    with pytest.raises(VislabError, match="frozen_stages must be 0 to 5, got True"):
        create_model("timm/resnet18", num_classes=3, frozen_stages=True)


@pytest.mark.parametrize(
    ("encoder", "message"),
    [
        ("timm/resnt18", "timm has no model 'resnt18', did you mean timm/resnet18"),
        ("timm/ResNet18", "timm has no model 'ResNet18', did you mean timm/resnet18"),
        ("resnet18", "must be timm/NAME, got 'resnet18', did you mean timm/resnet18"),
    ],
)
def test_an_unknown_encoder_suggests_the_closest(encoder, message):
    with pytest.raises(VislabError, match=message):
        create_model("fpn", num_classes=3, encoder=encoder)
    with pytest.raises(VislabError, match=f"^model fpn: model.kwargs.encoder.*{message}"):
        prepare("fpn", {"encoder": encoder, "weights": "imagenet"})  # before any weights


def test_a_model_name_in_other_letters_suggests_the_name():
    with pytest.raises(VislabError, match="unknown model 'ResNet9', did you mean resnet9"):
        create_model("ResNet9", num_classes=3)


def test_a_fifo_as_weights_is_named_never_opened(tmp_path):
    fifo = tmp_path / "fifo.ckpt"
    os.mkfifo(fifo)
    with pytest.raises(VislabError, match=f"{fifo} is a FIFO \\(named pipe\\), not a weights"):
        prepare("timm/resnet18", {"weights": str(fifo)})
    with pytest.raises(VislabError, match=f"weights file not found: {tmp_path / 'none.pth'}"):
        prepare("timm/resnet18", {"weights": str(tmp_path / "none.pth")})


def _unreadable(folder):
    """p1 data with one image that cannot be decoded: an error about it means the data were
    read before the model's kwargs were checked."""
    data = write_p1_layout(folder, num_classes=4, per_class=2)
    next((data / "train_50").glob("*.png")).write_bytes(b"garbage")
    return data


def _fails(capsys, argv, message):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], err


def test_train_checks_kwargs_before_the_data(tmp_path, capsys):
    data = _unreadable(tmp_path / "p1")
    for sets, message in [
        (['model.kwargs.batch_norm="false"'], "batch_norm: expected bool, got 'false'"),
        (["model.name=ResNet9"], "did you mean resnet9"),
        (["model.name=timm/resnet18", "model.kwargs.input_size=30000"], "must be <= 13377"),
    ]:
        extra = [a for s in sets for a in ("--set", s)]
        _fails(capsys, train_args(data, tmp_path / "run", 1, *extra), message)


def test_train_checks_the_encoder_before_the_data(p2_tiny, tmp_path, capsys):
    kwargs = "model.kwargs={encoder: timm/resnt18, weights: null}"
    args = seg_train_args(p2_tiny, tmp_path / "run", 1, "--set", "model.name=fpn", "--set", kwargs)
    _fails(capsys, args, "timm has no model 'resnt18', did you mean timm/resnet18")
    assert torch.get_default_device().type == "cpu"  # the dry build leaves no device behind
