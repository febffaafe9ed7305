"""`vislab export` and `vislab predict` on the exported files: the same predictions, no code."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import seg_train_args, train_args
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from vislab.cli import main
from vislab.errors import VislabError
from vislab.infer.checkpoint import load_model


@pytest.fixture(scope="module")
def cls_run(p1_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "cls"
    assert main(train_args(p1_tiny, out, 2)) == 0
    return out


@pytest.fixture(scope="module")
def seg_run(p2_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "seg"
    assert main(seg_train_args(p2_tiny, out, 1)) == 0
    return out


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_exported_classifier_predicts_what_the_checkpoint_predicts(cls_run, p1_tiny, fmt):
    ckpt = cls_run / "checkpoints" / "best.ckpt"
    assert main(["export", "--ckpt", str(ckpt), "--format", fmt]) == 0
    exported = ckpt.with_suffix(f".{fmt}")
    preds = {}
    for source in (ckpt, exported):
        out = cls_run / f"pred_{source.suffix[1:]}.csv"
        engine = "torch" if source == ckpt else "auto"  # not the export beside it
        assert main(["predict", "--ckpt", str(source), "--images", str(p1_tiny / "val_50"),
                     "--out", str(out), "--threads", "1", "--engine", engine]) == 0  # fmt: skip
        preds[source.suffix] = out.read_text()
    assert preds[".ckpt"] == preds[f".{fmt}"]
    assert len(preds[".ckpt"].splitlines()) == 1 + 16  # header + every val image


def test_safetensors_holds_tensors_and_the_metadata(cls_run):
    ckpt = cls_run / "checkpoints" / "best.ckpt"
    out = cls_run / "weights.safetensors"
    assert main(["export", "--ckpt", str(ckpt), "--format", "safetensors", "--out", str(out)]) == 0
    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()["vislab"])
        keys = set(f.keys())
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert keys == {k.removeprefix("model.") for k in state}
    assert meta["model"] == "model_a" and meta["task"] == "classification"
    assert meta["classes"] == ["0", "1", "2", "3"] and len(meta["mean"]) == 3
    assert meta["image_size"] == [32, 32] and meta["epoch"] >= 1


def test_exported_segmenter_writes_the_same_masks(seg_run, p2_tiny):
    ckpt = seg_run / "checkpoints" / "best.ckpt"
    assert main(["export", "--ckpt", str(ckpt), "--format", "onnx"]) == 0
    masks = {}
    for source in (ckpt, ckpt.with_suffix(".onnx")):
        out = seg_run / f"masks_{source.suffix[1:]}"
        engine = "torch" if source == ckpt else "auto"
        assert main(["predict", "--ckpt", str(source), "--images", str(p2_tiny / "validation"),
                     "--out", str(out), "--threads", "1", "--engine", engine]) == 0  # fmt: skip
        masks[source.suffix] = {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}
    assert len(masks[".ckpt"]) == 4 and masks[".ckpt"] == masks[".onnx"]


def test_an_exported_segmenter_takes_its_window_and_pads_a_smaller_one(seg_run, tmp_path):
    ckpt = seg_run / "checkpoints" / "best.ckpt"
    exported = tmp_path / "seg.onnx"
    assert main(["export", "--ckpt", str(ckpt), "--format", "onnx", "--out", str(exported)]) == 0
    net, meta = load_model(ckpt)
    onnx_net, _ = load_model(exported)
    assert meta.window == [32, 32]
    assert onnx_net.session.get_inputs()[0].shape[-2:] == meta.window  # a static graph
    # a window clipped to a 20x28 tile: padded with zeros (the mean colour), logits cropped back
    x = torch.randn(2, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    got = onnx_net(x)["out"]
    with torch.no_grad():
        want = net(torch.nn.functional.pad(x, (0, 4, 0, 12)))["out"][..., :20, :28]
    assert got.shape == (2, 7, 20, 28) and torch.allclose(got, want, atol=1e-4)
    with pytest.raises(VislabError, match="takes windows of 32x32; got 32x40"):
        onnx_net(torch.zeros(1, 3, 40, 32))
    # through predict: tiles smaller than the window get masks of their own size
    tiles = tmp_path / "small"
    tiles.mkdir()
    for i in range(2):
        Image.fromarray(np.full((40, 56, 3), 60 * i, np.uint8)).save(tiles / f"000{i}_sat.jpg")
    out = tmp_path / "masks"
    args = ["--ckpt", str(exported), "--images", str(tiles), "--out", str(out)]
    assert main(["predict", *args, "--threads", "1"]) == 0
    assert [Image.open(m).size for m in sorted(out.glob("*.png"))] == [(56, 40)] * 2


def test_export_refusals(cls_run, tmp_path, capsys):
    ckpt = cls_run / "checkpoints" / "best.ckpt"
    bad_out = ["export", "--ckpt", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "m.pt")]
    assert main(bad_out) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    foreign = tmp_path / "foreign.safetensors"  # valid, but not from vislab export
    save_file({"w": torch.zeros(2)}, str(foreign))
    images = tmp_path / "images"
    images.mkdir()
    pred = ["predict", "--images", str(images), "--out", str(tmp_path / "p")]
    assert main([*pred, "--ckpt", str(foreign)]) == 2
    assert "holds no vislab metadata" in capsys.readouterr().err
    truncated = tmp_path / "truncated.safetensors"
    whole = tmp_path / "whole.safetensors"
    assert (
        main(["export", "--ckpt", str(ckpt), "--format", "safetensors", "--out", str(whole)]) == 0
    )
    truncated.write_bytes(whole.read_bytes()[:1000])
    assert main([*pred, "--ckpt", str(truncated)]) == 2
    assert "cannot read" in capsys.readouterr().err
    onnx_file = tmp_path / "m.onnx"
    assert main(["export", "--ckpt", str(ckpt), "--format", "onnx", "--out", str(onnx_file)]) == 0
    pred = ["predict", "--ckpt", str(onnx_file), "--images", str(tmp_path), "--out", "p.csv"]
    assert main([*pred, "--precision", "bf16"]) == 2
    assert "an ONNX model runs in fp32" in capsys.readouterr().err


def test_engine_auto_uses_the_export_of_this_very_checkpoint(cls_run, p1_tiny, tmp_path, capsys):
    ckpt = tmp_path / "best.ckpt"
    shutil.copy(cls_run / "checkpoints" / "best.ckpt", ckpt)
    args = ["predict", "--ckpt", str(ckpt), "--images", str(p1_tiny / "val_50")]
    args += ["--out", str(tmp_path / "p.csv"), "--threads", "1"]

    def engine_used(*extra: str) -> str:
        assert main([*args, *extra]) == 0
        ran = capsys.readouterr().out.strip().rsplit(", ", 1)[1].rstrip(")")
        engine, device = ran.split(" on ")
        assert device == "cpu"
        return engine

    assert engine_used() == "pytorch"  # nothing exported yet
    assert engine_used("--engine", "onnxruntime") == "onnxruntime"  # exports on demand
    assert ckpt.with_suffix(".onnx").is_file()
    assert engine_used() == "onnxruntime"  # auto: the checkpoint's export is used
    os.utime(ckpt)  # touched, the same bytes: still its export
    assert engine_used() == "onnxruntime"
    # `cp -p` of another checkpoint over it: older than the export, but not what it came from
    other = cls_run / "checkpoints" / "epoch_001.ckpt"
    assert other.read_bytes() != ckpt.read_bytes()
    shutil.copy2(other, ckpt)
    exported_time = ckpt.with_suffix(".onnx").stat().st_mtime
    os.utime(ckpt, (exported_time - 10, exported_time - 10))
    assert engine_used() == "pytorch"
    assert engine_used("--engine", "onnxruntime") == "onnxruntime"  # re-exported from it
    assert engine_used() == "onnxruntime"
    assert main([*args[:2], str(ckpt.with_suffix(".onnx")), *args[3:], "--engine", "torch"]) == 2
    assert "runs with --engine onnxruntime" in capsys.readouterr().err


def test_an_export_names_its_checkpoint_and_is_not_exported_again(cls_run, tmp_path, capsys):
    ckpt = cls_run / "checkpoints" / "best.ckpt"
    out = tmp_path / "w.safetensors"
    assert main(["export", "--ckpt", str(ckpt), "--format", "safetensors", "--out", str(out)]) == 0
    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()["vislab"])
    assert meta["source_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta["config"] is None and "weights" not in meta["model_kwargs"]
    again = ["export", "--ckpt", str(out), "--format", "onnx", "--out", str(tmp_path / "w.onnx")]
    assert main(again) == 2
    assert "already an export (safetensors); give its checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["task", "mean", "image_size"])
def test_a_checkpoint_whose_metadata_lacks_a_field_is_named(
    cls_run, p1_tiny, tmp_path, capsys, field
):
    ckpt = torch.load(cls_run / "checkpoints" / "best.ckpt", weights_only=True)
    del ckpt["vislab"][field]
    broken = tmp_path / "broken.ckpt"
    torch.save(ckpt, broken)
    args = ["predict", "--ckpt", str(broken), "--images", str(p1_tiny / "val_50")]
    assert main([*args, "--out", str(tmp_path / "p.csv"), "--engine", "torch"]) == 2
    err = capsys.readouterr().err
    assert f"{broken}: its vislab metadata lacks {field}" in err and "Traceback" not in err


def _tampered(cls_run, tmp_path, change) -> str:
    ckpt = torch.load(cls_run / "checkpoints" / "best.ckpt", weights_only=True)
    change(ckpt)
    broken = tmp_path / "tampered.ckpt"
    torch.save(ckpt, broken)
    return str(broken)


def _set_meta(key, value):
    return lambda ckpt: ckpt["vislab"].__setitem__(key, value)


def _set_kwarg(key, value):
    return lambda ckpt: ckpt["vislab"]["model_kwargs"].__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set_meta("classes", [{"x": 1}, [1, 2], None, 3.5]),
            "vislab metadata classes must be names (non-empty text), not {'x': 1}",
        ),
        (
            _set_meta("classes", ["a", "", "b", "c"]),
            "vislab metadata classes must be names (non-empty text), not ''",
        ),
        (
            _set_meta("classes", ["a", "b", "a", "c"]),
            "vislab metadata classes must be distinct names; 'a' is listed twice",
        ),
        (  # 13.4 GiB for one image
            _set_meta("image_size", [40000, 40000]),
            "vislab metadata image_size must be two positive integers (height, width), "
            "178,956,970 pixels at most (what Pillow decodes), not [40000, 40000]",
        ),
        (_set_meta("model", ["model_a"]), "vislab metadata model must be a model name"),
        (  # 160 GB of weights: counted on the meta device, never allocated
            _set_kwarg("hidden", [200000, 200000]),
            "weights do not fit model_a: its vislab metadata (model_kwargs {'hidden': [200000, "
            "200000]}) builds one of 40,820,",
        ),
        (
            _set_kwarg("channels", "ab"),
            "its vislab metadata model_kwargs {'channels': 'ab'} do not build model_a: ",
        ),
        (
            lambda ckpt: ckpt.__setitem__("epoch", "abc"),
            "its epoch must be an integer from 0, not 'abc'",
        ),
        (  # the metadata contradicts its model (not "--out p.csv must be a folder")
            _set_meta("task", "segmentation"),
            "its vislab metadata says task segmentation, but its model model_a is a "
            "classification model",
        ),
    ],
    ids="classes blank-class class-twice image_size model huge kwargs epoch task".split(),
)
def test_checkpoint_metadata_is_checked_before_it_is_used(
    cls_run, p1_tiny, tmp_path, capsys, change, message
):
    broken = _tampered(cls_run, tmp_path, change)
    out = tmp_path / "p.csv"
    args = ["predict", "--ckpt", broken, "--images", str(p1_tiny / "val_50"), "--out", str(out)]
    assert main([*args, "--engine", "torch", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{broken}: {message}" in err, err
    assert not out.exists()


def test_model_init_that_is_no_checkpoint_is_named(tmp_path, capsys):
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    fifo = tmp_path / "fifo.ckpt"
    os.mkfifo(fifo)
    for path, message in [
        (text, f"cannot read checkpoint {text}: not a plain-data checkpoint (not a file "),
        (fifo, f"{fifo} is a FIFO (named pipe), not a checkpoint"),  # never opened: it blocks
    ]:
        args = train_args(tmp_path / "no-data", tmp_path / "run", 1, "--set", f"model.init={path}")
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not (tmp_path / "run").exists()
