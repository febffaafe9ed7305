"""Segmentation train -> predict -> evaluate through the CLI and hw1_2.sh, on generated tiles."""

import json
import os
import subprocess

import numpy as np
import pytest
import torch
from conftest import REPO, jolted_checkpoint, seg_train_args
from PIL import Image

import vislab.infer.predict
from vislab.cli import main
from vislab.course.landcover import read_mask, write_mask
from vislab.data.batches import normalize
from vislab.data.tiles import load_tiles
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import prepare, segment_logits, tile_logits


@pytest.fixture(scope="module")
def seg_run(p2_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("segruns") / "s"
    assert main(seg_train_args(p2_tiny, out, 2, "--set", "trainer.precision=32-true")) == 0
    return out


def test_run_folder_logs_miou_and_keeps_snapshots(seg_run):
    header = (seg_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val_miou", "val_pixel_acc", "val_iou_urban", "train_loss"} <= set(header)
    names = sorted(p.name for p in (seg_run / "checkpoints").iterdir())
    assert names == ["best.ckpt", "epoch_001.ckpt", "epoch_002.ckpt", "last.ckpt"]
    meta = torch.load(seg_run / "checkpoints" / "best.ckpt", weights_only=True)["vislab"]
    assert meta["task"] == "segmentation" and meta["image_size"] == [32, 32]
    # predict's scale and window: tiles of 64 trained at 32, whole
    assert meta["scale"] == [0.5, 0.5] and meta["window"] == [32, 32]


def test_a_crop_trained_model_records_its_crop_as_the_window(p2_tiny, tmp_path):
    out = tmp_path / "crop"
    assert main(seg_train_args(p2_tiny, out, 1, "--set", "data.crop_size=24")) == 0
    meta = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)["vislab"]
    assert meta["scale"] == [0.5, 0.5] and meta["window"] == [24, 24]


def test_predict_writes_full_resolution_masks_and_evaluate_matches_training(
    seg_run, p2_tiny, tmp_path, capsys
):
    out = tmp_path / "masks"
    ckpt = str(seg_run / "checkpoints" / "best.ckpt")
    assert (
        main(
            ["predict", "--ckpt", ckpt, "--images", str(p2_tiny / "validation"), "--out", str(out)]
        )
        == 0
    )
    files = sorted(p.name for p in out.iterdir())
    assert files == ["0000.png", "0001.png", "0002.png", "0003.png"]
    rgb = np.asarray(Image.open(out / "0000.png"))
    assert rgb.shape == (64, 64, 3)  # trained at 32, written at the input's 64
    assert set(np.unique(rgb)) <= {0, 255}

    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--gt",
                str(p2_tiny / "validation"),
                "--pred",
                str(out),
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert printed.startswith("class #0 : ") and "\n\nmean_iou: " in printed
    s = json.loads((tmp_path / "s.json").read_text())
    assert set(s) >= {"miou", "iou", "pixel_acc", "confusion"}
    best = max(
        float(r.split(",")[header_index(seg_run, "val_miou")])
        for r in (seg_run / "metrics.csv").read_text().splitlines()[1:]
    )
    assert s["miou"] == pytest.approx(best, abs=1e-5)  # same masks as validation scored


def test_predict_tta_writes_the_average_of_the_eight_views(seg_run, p2_tiny, tmp_path, monkeypatch):

    asked = []  # a model this young predicts one class whatever the view: record the request

    def recording(model, x, meta, tta=False, batch=4):
        asked.append(tta)
        return tile_logits(model, x, meta, tta, batch)

    monkeypatch.setattr(vislab.infer.predict, "tile_logits", recording)
    out = tmp_path / "masks"
    ckpt = seg_run / "checkpoints" / "best.ckpt"
    val = p2_tiny / "validation"
    args = ["predict", "--ckpt", str(ckpt), "--images", str(val), "--out", str(out), "--tta"]
    assert main(args) == 0
    assert asked and all(asked)
    model, meta = load_model(ckpt)
    x = torch.from_numpy(load_tiles(val).images).permute(0, 3, 1, 2)
    x = normalize(x, torch.tensor(meta.mean), torch.tensor(meta.std))
    with torch.inference_mode():
        expected = segment_logits(prepare(model), x, meta.image_size, tta=True).argmax(1)
    written = np.stack([read_mask(out / f"000{i}.png")[0] for i in range(4)])
    assert (written == expected.numpy()).mean() > 0.999  # the same up to float ties


def test_predict_sizes_each_tile_against_the_free_memory(
    seg_run, p2_tiny, tmp_path, capsys, monkeypatch
):
    ckpt = seg_run / "checkpoints" / "best.ckpt"
    _, meta = load_model(ckpt)
    one = vislab.infer.predict.predict_bytes(64, 64, meta)
    # (64*64 pixels at 40 + 4K bytes, and (32*32) at 16 + 4K at the model's scale of 0.5)
    assert one == 64 * 64 * (39 + 4 * 7) + 32 * 32 * (16 + 4 * 7)
    val, args = p2_tiny / "validation", ["predict", "--ckpt", str(ckpt), "--images"]
    assert main([*args, str(val), "--out", str(tmp_path / "together")]) == 0
    passes = []

    def counting(model, x, meta, tta=False, batch=4):
        passes.append(len(x))
        return tile_logits(model, x, meta, tta, batch)

    monkeypatch.setattr(vislab.infer.predict, "tile_logits", counting)
    # room for one tile, not for the four of a batch: one at a time, the same masks
    monkeypatch.setattr(vislab.infer.predict, "available_memory", lambda: 2 * one)
    assert main([*args, str(val), "--out", str(tmp_path / "apart")]) == 0
    assert passes == [1, 1, 1, 1]
    for name in ("0000.png", "0003.png"):
        together = np.asarray(Image.open(tmp_path / "together" / name))
        assert np.array_equal(together, np.asarray(Image.open(tmp_path / "apart" / name)))
    # room for none: refused before any prediction, naming the tile, nothing written
    monkeypatch.setattr(vislab.infer.predict, "available_memory", lambda: one - 1)
    passes.clear()
    capsys.readouterr()
    assert main([*args, str(val), "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "0000_sat.jpg: a 64x64 tile needs about 0.0 GiB to predict" in err
    assert "cut it into smaller tiles" in err
    assert passes == [] and not (tmp_path / "none").exists()


def header_index(run, column):
    return (run / "metrics.csv").read_text().splitlines()[0].split(",").index(column)


def test_hw1_2_sh_follows_the_course_contract(seg_run, p2_tiny, tmp_path):
    # hw1_2.sh writes what `vislab predict --tta` writes, a model whose views disagree
    ckpt = jolted_checkpoint(seg_run / "checkpoints" / "best.ckpt", tmp_path / "jolted.ckpt")
    env = dict(os.environ, VISLAB_P2_CKPT=str(ckpt))
    out = tmp_path / "new" / "masks"
    subprocess.run(
        ["bash", str(REPO / "hw1_2.sh"), str(p2_tiny / "validation"), str(out)],
        check=True,
        env=env,
        capture_output=True,
    )
    names = ["0000.png", "0001.png", "0002.png", "0003.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    predict = ["predict", "--ckpt", str(ckpt), "--images", str(p2_tiny / "validation"), "--out"]
    main([*predict, str(tmp_path / "plain")])
    main([*predict, str(tmp_path / "tta"), "--tta"])

    def masks(folder):
        return [(folder / name).read_bytes() for name in names]

    assert masks(tmp_path / "plain") != masks(tmp_path / "tta")
    assert masks(out) == masks(tmp_path / "tta")


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing", r"has 3 masks but .* has 4: no prediction for 0002"),
        ("size", r"0001_mask.png is 64x64 but|0001.png is 32x32 but its image is 64x64"),
        ("misnamed", r"do not line up: 0003_mask.png pairs with 0009.png"),
    ],
)
def test_evaluate_refuses_masks_that_do_not_pair(p2_tiny, tmp_path, capsys, breakage, message):
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(4):
        write_mask(np.zeros((64, 64), dtype=np.uint8), pred / f"{i:04d}.png")
    if breakage == "missing":
        (pred / "0002.png").unlink()
    elif breakage == "size":
        write_mask(np.zeros((32, 32), dtype=np.uint8), pred / "0001.png")
    elif breakage == "misnamed":
        (pred / "0003.png").rename(pred / "0009.png")
    code = main(["evaluate", "--gt", str(p2_tiny / "validation"), "--pred", str(pred)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_predict_refuses_two_files_of_one_tile_before_writing(seg_run, p2_tiny, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("0000_sat.jpg", "0001_sat.jpg"):
        (images / name).write_bytes((p2_tiny / "validation" / name).read_bytes())
    (images / "0000.jpg").write_bytes((images / "0001_sat.jpg").read_bytes())
    old = tmp_path / "masks"
    old.mkdir()
    write_mask(np.zeros((64, 64), np.uint8), old / "0000.png")
    write_mask(np.zeros((64, 64), np.uint8), old / "0001.png")
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    ckpt = str(seg_run / "checkpoints" / "best.ckpt")
    args = ["predict", "--ckpt", ckpt, "--images", str(images), "--out", str(old)]
    assert main([*args, "--threads", "1"]) == 2
    assert "are both tile 0000" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
