"""The inputs users get wrong, fed to every command: one clear line, exit 2, nothing half-written.

Grayscale and RGBA images are the exception by design: they are converted to RGB as
torchvision's loader does (tested below); 16-bit grey images are refused, because converting
them would clip them silently (16-bit colour PNGs keep their high bytes: tests/test_images.py).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, seg_train_args, train_args
from PIL import Image
from stalling import stalled_at

from vislab.cli import main
from vislab.errors import VislabWarning


@pytest.fixture(scope="module")
def runs(p1_tiny, p2_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_runs")
    assert main(train_args(p1_tiny, root / "cls", 1)) == 0
    assert main(seg_train_args(p2_tiny, root / "seg", 1)) == 0
    return root / "cls", root / "seg"


def fails(capsys, argv: list[str], message: str) -> None:
    """The command exits 2 with exactly one line on stderr that contains message."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert not any("Traceback" in line for line in err)


def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"0_{i}.png"
        )
    return folder


def _predict(ckpt: Path, images: Path, out: Path) -> list:
    return ["predict", "--ckpt", ckpt, "--images", images, "--out", out, "--threads", "1"]


def test_image_folders_users_get_wrong(runs, tmp_path, capsys):
    ckpt = runs[0] / "checkpoints" / "best.ckpt"
    out = tmp_path / "pred.csv"
    fails(capsys, _predict(ckpt, tmp_path / "missing", out), "not a folder")
    (tmp_path / "empty").mkdir()
    fails(capsys, _predict(ckpt, tmp_path / "empty", out), "no images")
    zero = _images(tmp_path / "zero")
    (zero / "0_9.png").write_bytes(b"")
    fails(capsys, _predict(ckpt, zero, out), "cannot read image")
    cut = _images(tmp_path / "cut")
    data = (cut / "0_0.png").read_bytes()
    (cut / "0_9.png").write_bytes(data[: len(data) // 2])
    fails(capsys, _predict(ckpt, cut, out), "0_9.png: image file is truncated")
    deep = _images(tmp_path / "deep")
    Image.fromarray(np.full((32, 32), 40000, dtype=np.uint16)).save(deep / "0_9.png")
    fails(capsys, _predict(ckpt, deep, out), "0_9.png is a I;16 (16-bit grey) image, more than 8")
    assert not out.exists()  # no refused command wrote the CSV


def test_grayscale_and_rgba_are_read_as_rgb(runs, tmp_path):
    ckpt = runs[0] / "checkpoints" / "best.ckpt"
    mixed = _images(tmp_path / "mixed")
    rgb = np.asarray(Image.open(mixed / "0_0.png"))
    Image.fromarray(rgb[..., 0]).save(mixed / "0_8.png")  # L
    Image.fromarray(np.dstack([rgb, np.full((32, 32), 255, np.uint8)])).save(mixed / "0_9.png")
    assert main([str(a) for a in _predict(ckpt, mixed, tmp_path / "p.csv")]) == 0
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "filename,label" and len(rows) == 1 + 5


def test_checkpoints_users_get_wrong(runs, p1_tiny, tmp_path, capsys):
    cls, seg = runs
    images, out = p1_tiny / "val_50", tmp_path / "p.csv"
    fails(capsys, _predict(tmp_path / "none.ckpt", images, out), "checkpoint not found")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    fails(capsys, _predict(tmp_path / "text.ckpt", images, out), "not a plain-data checkpoint")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    fails(capsys, _predict(tmp_path / "foreign.ckpt", images, out), "not a vislab checkpoint")
    junk = tmp_path / "junk.onnx"  # the parser's own words vary with the protobuf version
    junk.write_text("not a model")
    fails(capsys, _predict(junk, images, out), f"cannot read {junk}: ")
    other = torch.load(cls / "checkpoints" / "best.ckpt", weights_only=True)
    other["vislab"]["model"] = "resnet9"  # metadata of one model, weights of another
    torch.save(other, tmp_path / "other.ckpt")
    fails(capsys, _predict(tmp_path / "other.ckpt", images, out), "weights do not fit resnet9")
    seg_ckpt = seg / "checkpoints" / "best.ckpt"
    fails(
        capsys,
        ["embed", seg_ckpt, "--data", images],
        "is a segmentation model, not classification",
    )
    fails(capsys, ["progress", cls], "is a classification run")
    assert not out.exists()


def test_masks_users_get_wrong(p2_tiny, tmp_path, capsys):
    val = p2_tiny / "validation"
    pred = tmp_path / "pred"
    shutil.copytree(val, pred, ignore=shutil.ignore_patterns("*_sat.jpg"))
    for p in pred.glob("*_mask.png"):
        p.rename(pred / p.name.replace("_mask", ""))
    small = pred / "0001.png"
    Image.open(small).resize((32, 32), Image.NEAREST).save(small)
    fails(capsys, ["evaluate", "--pred", pred, "--gt", val], "0001")
    (pred / "0001.png").write_bytes(b"")
    fails(capsys, ["evaluate", "--pred", pred, "--gt", val], "cannot read mask")
    gray = np.zeros((64, 64), dtype=np.uint8)
    Image.fromarray(gray).save(pred / "0001.png")
    fails(
        capsys,
        ["evaluate", "--pred", pred, "--gt", val],
        "mask must be an 8-bit RGB (or RGBA) image",
    )
    (pred / "0001.png").unlink()
    fails(capsys, ["evaluate", "--pred", pred, "--gt", val], "4")  # counts differ: named
    fails(
        capsys,
        [
            "overlay",
            "--image",
            val / "0000_sat.jpg",
            "--mask",
            tmp_path / "none.png",
            "--out",
            tmp_path / "o.png",
        ],  # fmt: skip
        "none.png",
    )
    assert not (tmp_path / "o.png").exists()


def test_red_pixels_are_a_warning_not_an_error(p2_tiny, tmp_path, capsys):
    # the real masks hold a few pure red pixels (no class): read as urban, said once
    val = tmp_path / "val"
    shutil.copytree(p2_tiny / "validation", val)
    mask = np.asarray(Image.open(val / "0000_mask.png")).copy()
    mask[:2, :2] = (255, 0, 0)
    Image.fromarray(mask).save(val / "0000_mask.png")
    pred = tmp_path / "pred"
    pred.mkdir()
    for p in (p2_tiny / "validation").glob("*_mask.png"):
        shutil.copy(p, pred / p.name.replace("_mask", ""))
    with pytest.warns(VislabWarning, match=r"1 mask\(s\) hold 4 pure red pixel\(s\)"):
        assert main(["evaluate", "--pred", str(pred), "--gt", str(val)]) == 0
    assert "mean_iou" in capsys.readouterr().out


def test_a_failed_mask_prediction_keeps_earlier_results(runs, p2_tiny, tmp_path, capsys):
    ckpt = runs[1] / "checkpoints" / "best.ckpt"
    tiles = tmp_path / "tiles"
    shutil.copytree(p2_tiny / "validation", tiles)
    out = tmp_path / "masks"  # earlier results: here the true masks, unlike any prediction
    out.mkdir()
    for p in tiles.glob("*_mask.png"):
        shutil.copy(p, out / p.name.replace("_mask", ""))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tiles / "0003_sat.jpg").write_bytes(b"\xff\xd8 broken")  # the last of four tiles
    argv = [*_predict(ckpt, tiles, out), "--batch-size", "1"]  # 3 tiles done before it fails
    fails(capsys, argv, "0003_sat.jpg")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks", "tiles"]  # no scratch left


def test_outputs_that_cannot_be_written(runs, p1_tiny, tmp_path, capsys):
    ckpt = runs[0] / "checkpoints" / "best.ckpt"
    images = p1_tiny / "val_50"
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    fails(capsys, _predict(ckpt, images, blocker / "p.csv"), str(blocker))
    fails(capsys, _predict(ckpt, images, tmp_path), "is a folder; a classifier writes a CSV")
    fails(capsys, ["export", "--ckpt", ckpt, "--format", "onnx", "--out", blocker / "m.onnx"],
          str(blocker))  # fmt: skip
    assert blocker.read_text() == "a file where a folder should be"


def test_a_full_disk_names_the_file_it_was_writing(runs, p1_tiny, tmp_path, capsys, monkeypatch):
    import vislab.fileio

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() or fsync() do

    monkeypatch.setattr(vislab.fileio.os, "fsync", full)
    out = tmp_path / "pred.csv"
    images = p1_tiny / "val_50"
    fails(capsys, _predict(runs[0] / "checkpoints" / "best.ckpt", images, out),
          f"No space left on device: {out}")  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # nor a scratch file left


def test_a_file_name_with_control_characters_keeps_the_message_one_line(runs, tmp_path, capsys):
    odd = _images(tmp_path / "odd")
    (odd / "0_\n\x1b[31mred.png").write_bytes(b"not a png")
    fails(capsys, _predict(runs[0] / "checkpoints" / "best.ckpt", odd, tmp_path / "p.csv"),
          "0_\\n\\x1b[31mred.png")  # fmt: skip


def test_configs_users_get_wrong(p1_tiny, tmp_path, capsys):
    out = tmp_path / "run"
    fails(capsys, train_args(p1_tiny, out, 1, "--set", "optim.lrr=0.1"), "unknown config key")
    fails(capsys, train_args(p1_tiny, out, 1, "--set", "optim.lr=fast"), "optim.lr")
    fails(capsys, train_args(p1_tiny, out, 1, "--set", "optim.name=adam"), "adam")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: classification\nmodel: [unclosed\n")
    fails(capsys, ["train", bad, "--data", p1_tiny, "--out", out], "not valid YAML")
    fails(capsys, train_args(tmp_path / "nodata", out, 1), "nodata")
    pad = train_args(p1_tiny, out, 1, "--set", "data.crop_padding=32")  # the images are 32x32
    fails(capsys, pad, "data.crop_padding: 32 must be below the images' 32x32")
    assert not out.exists()  # no refused run left a folder behind


def test_a_crop_larger_than_the_tiles_is_refused(p2_tiny, tmp_path, capsys):
    out = tmp_path / "run"
    crop = seg_train_args(p2_tiny, out, 1, "--set", "data.crop_size=48")  # tiles resized to 32
    fails(capsys, crop, "data.crop_size: 48 is larger than the training tiles (32x32 after")
    assert not out.exists()


def test_a_loss_that_is_not_finite_stops_the_run_with_no_nan_weights_saved(
    p1_tiny, tmp_path, capsys
):
    out = tmp_path / "run"
    fails(capsys, train_args(p1_tiny, out, 2, "--set", "optim.lr=1e30"),
          "the training loss is nan at epoch 1")  # fmt: skip
    assert not (out / "checkpoints").exists()  # before: NaN weights saved as best.ckpt, exit 0


def test_a_comma_in_a_file_name_is_quoted_and_read_back(runs, p1_tiny, tmp_path, capsys):
    cls, _ = runs
    images = tmp_path / "val"
    shutil.copytree(p1_tiny / "val_50", images)
    (images / "0_16.png").rename(images / "0_16,copy.png")
    pred = tmp_path / "pred.csv"
    ckpt = str(cls / "checkpoints" / "best.ckpt")
    assert main(["predict", "--ckpt", ckpt, "--images", str(images), "--out", str(pred)]) == 0
    rows = pred.read_text().splitlines()
    assert [r for r in rows if "copy" in r][0].startswith('"0_16,copy.png",')
    assert all(len(r.split(",")) == 2 for r in rows if "copy" not in r)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(images)]) == 0
    assert f"({len(rows) - 1} images)" in capsys.readouterr().out


def test_a_last_batch_of_one_image_does_not_stop_batch_norm(p2_tiny, tmp_path):
    # 16 tiles in batches of 15: the last batch holds one, and DeepLabv3's pooled branch
    # normalises a 1x1 map over the batch
    args = seg_train_args(p2_tiny, tmp_path / "run", 1, "--set", "data.batch_size=15")
    args[1] = args[1].replace("p2_cpu.yaml", "p2_deeplabv3.yaml")
    assert main([*args, "--set", "model.kwargs.weights=null"]) == 0


def _bomb_png(path: Path) -> None:
    """A PNG whose header claims 20000x20000 pixels (and holds none)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_file_names_and_headers_users_get_wrong(runs, tmp_path, capsys):
    ckpt = runs[0] / "checkpoints" / "best.ckpt"
    out = tmp_path / "pred.csv"
    odd = _images(tmp_path / "odd")
    os.rename(odd / "0_1.png", os.fsencode(odd) + b"/0_\xff.png")  # not UTF-8
    fails(capsys, _predict(ckpt, odd, out), "the name b'0_\\xff.png' is not valid UTF-8")
    bomb = _images(tmp_path / "bomb")
    _bomb_png(bomb / "0_9.png")
    fails(capsys, _predict(ckpt, bomb, out), "0_9.png: Image size (400000000 pixels) exceeds")
    mac = _images(tmp_path / "mac")
    (mac / "._0_0.png").write_bytes(b"\0\5\26\7 macOS resource fork")
    assert main([str(a) for a in _predict(ckpt, mac, out)]) == 0  # hidden: not an image
    assert len(out.read_text().splitlines()) == 1 + 3


def test_embed_of_one_class_is_refused(runs, tmp_path, capsys):
    one = _images(tmp_path / "one" / "0")
    ckpt = runs[0] / "checkpoints" / "best.ckpt"
    fails(capsys, ["embed", ckpt, "--data", one.parent], "needs images of at least 2 classes")


def test_hw1_1_sh_takes_a_folder_whose_name_starts_with_a_dash(runs, tmp_path):
    _images(tmp_path / "-imgs")
    env = dict(os.environ, VISLAB_P1_CKPT=str(runs[0] / "checkpoints" / "best.ckpt"))
    done = subprocess.run(
        ["bash", str(REPO / "hw1_1.sh"), "-imgs", "-out.csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "-out.csv").read_text().splitlines()) == 1 + 3


@pytest.mark.parametrize(
    ("script", "recipe"), [("hw1_1.sh", "p1_ensemble"), ("hw1_2.sh", "p2_ensemble")]
)
def test_hw1_sh_without_its_model_says_how_to_make_it(script, recipe, tmp_path):
    # the scripts alone in a folder without runs/: the default model is missing
    (tmp_path / "scripts").mkdir()
    for f in (script, "scripts/course_predict.sh"):
        shutil.copy(REPO / f, tmp_path / f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISLAB_P")}
    done = subprocess.run(
        ["bash", str(tmp_path / script), "in", "out"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"{script}: no model at {tmp_path / 'runs' / recipe}: ")
    assert f"vislab train configs/{recipe}.yaml --data DATA --out runs/{recipe}" in done.stderr
    assert f"set VISLAB_P{script[4]}_CKPT to a checkpoint or an ensemble's folder" in done.stderr


def test_overlay_never_replaces_its_inputs(p2_tiny, tmp_path, capsys):
    val = p2_tiny / "validation"
    masks = tmp_path / "masks"
    masks.mkdir()
    for m in sorted(val.glob("*_mask.png")):
        shutil.copy(m, masks / m.name.replace("_mask", ""))  # predicted masks: xxxx.png
    before = {p.name: p.read_bytes() for p in masks.iterdir()}
    argv = ["overlay", "--image", val, "--mask", masks, "--out", masks]
    first = masks / "0000.png"
    fails(capsys, argv, f"--out {first} is {first}, which this command reads; write elsewhere")
    argv = ["overlay", "--image", val / "0000_sat.jpg", "--mask", first, "--out", first]
    fails(capsys, argv, f"--out {first} is {first}")
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == before


def test_no_command_writes_over_a_file_it_reads(runs, p1_tiny, p2_tiny, tmp_path, capsys):
    cls, seg = runs
    gt = tmp_path / "gt.csv"
    shutil.copy(p1_tiny / "val_gt.csv", gt)
    pred = tmp_path / "pred.csv"
    shutil.copy(gt, pred)
    (tmp_path / "gt_link.csv").symlink_to(gt)
    ckpt = tmp_path / "sub" / "best.ckpt"
    ckpt.parent.mkdir()
    shutil.copy(cls / "checkpoints" / "best.ckpt", ckpt)
    os.link(ckpt, tmp_path / "hard.ckpt")
    images = tmp_path / "images"
    shutil.copytree(p2_tiny / "validation", images)
    snapshot = seg / "checkpoints" / "best.ckpt"
    cases = [
        (["progress", seg, "--out", snapshot], f"--out {snapshot} is {snapshot}"),
        (["evaluate", "--pred", pred, "--gt", gt, "--json", gt], f"--json {gt} is {gt}"),
        (["evaluate", "--pred", pred, "--gt", gt, "--json", tmp_path / "gt_link.csv"], f"is {gt}"),
        (
            ["export", "--ckpt", ckpt, "--format", "onnx", "--out", tmp_path / "hard.ckpt"],
            f"is {ckpt}",
        ),
        (
            _predict(ckpt, p1_tiny / "val_50", ckpt),
            f"--out {ckpt} is {ckpt}, which this command reads",
        ),
        (_predict(seg / "checkpoints" / "best.ckpt", images, images), f"--out {images} is"),
        (["submission", "--p1", ckpt, "--out", ckpt.parent], f"--out {ckpt.parent} holds {ckpt}"),
    ]
    files = [snapshot, gt, ckpt, *sorted(images.iterdir())]
    before = [f.read_bytes() for f in files]
    for argv, message in cases:
        fails(capsys, argv, message)
    assert [f.read_bytes() for f in files] == before
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["best.ckpt"]
    # what a command does not read may be replaced: an earlier CSV among the images
    folder = tmp_path / "photos"
    shutil.copytree(p1_tiny / "val_50", folder)
    (folder / "pred.csv").write_text("an earlier prediction\n")
    assert main([str(a) for a in _predict(ckpt, folder, folder / "pred.csv")]) == 0
    assert (folder / "pred.csv").read_text().startswith("filename,label")


def test_no_command_writes_images_into_a_folder_it_reads_images_from(
    runs, p1_tiny, p2_tiny, tmp_path, capsys
):
    # a figure or an overlay among the tiles would be read as data by the next command
    tiles, photos = tmp_path / "p2" / "validation", tmp_path / "p1" / "val_50"
    shutil.copytree(p2_tiny, tiles.parent)
    shutil.copytree(p1_tiny, photos.parent)
    seg = tmp_path / "seg"  # a run whose own validation tiles are the copy
    assert main(seg_train_args(tiles.parent, seg, 1)) == 0
    masks = tmp_path / "masks"
    assert main([str(a) for a in _predict(seg / "checkpoints" / "best.ckpt", tiles, masks)]) == 0
    gt = photos.parent / "val_gt.csv"
    tile = tiles / "0000_sat.jpg"
    reads_images = "a folder this command reads images from"
    cases = [
        (["progress", seg, "--out", tile], f"--out {tile} is {tile}, which this command reads"),
        (["progress", seg, "--out", tiles / "grid.png"], f"is in {tiles}, {reads_images}"),
        (["embed", runs[0], "--data", photos, "--out", photos], f"is in {photos}, {reads_images}"),
        (["evaluate", "--pred", gt, "--gt", photos, "--out", photos], f"is in {photos}"),
        (["overlay", "--image", tiles, "--mask", masks, "--out", tiles], f"is in {tiles}"),
        (_predict(seg / "checkpoints" / "best.ckpt", tiles, tiles / "m"), f"is in {tiles}"),
    ]
    before = {p: p.read_bytes() for d in (tiles, photos) for p in sorted(d.iterdir())}
    for argv, message in cases:
        fails(capsys, argv, message)
    assert {p: p.read_bytes() for d in (tiles, photos) for p in sorted(d.iterdir())} == before


def test_a_second_command_writing_the_same_folder_is_refused_at_once(
    runs, p2_tiny, tmp_path, capsys
):
    from vislab.fileio import exclusive

    ckpt, out = runs[1] / "checkpoints" / "best.ckpt", tmp_path / "masks"
    out.mkdir()
    with exclusive(out, "--out"):  # a first predict, still writing
        fails(capsys, _predict(ckpt, p2_tiny / "validation", out), f"--out {out} is being written")
    assert list(out.iterdir()) == []
    assert main([str(a) for a in _predict(ckpt, p2_tiny / "validation", out)]) == 0  # in turn
    assert len(list(out.iterdir())) == 4


# a predict that stops after its first batch of masks, so that it can be killed mid-way
STALLED = stalled_at("vislab.infer.predict", "_write_masks", "written")


def _stalled_predict(ckpt: Path, images: Path, out: Path) -> subprocess.Popen:
    argv = [str(a) for a in _predict(ckpt, images, out)]
    proc = subprocess.Popen(
        [sys.executable, "-c", STALLED, *argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "written"  # the masks are in its scratch folder
    return proc


def test_scratch_folders_go_with_sigterm_and_after_sigkill(runs, p2_tiny, tmp_path):
    import signal

    ckpt, images, out = (
        runs[1] / "checkpoints" / "best.ckpt",
        p2_tiny / "validation",
        tmp_path / "m",
    )
    scratch = lambda: sorted(p.name for p in tmp_path.glob(".m.*"))  # noqa: E731

    proc = _stalled_predict(ckpt, images, out)
    assert len(scratch()) == 1 and scratch()[0].endswith(".partial")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert scratch() == [] and not out.exists()  # nothing half-written; the folder it made gone

    proc = _stalled_predict(ckpt, images, out)
    proc.kill()  # SIGKILL: no code of its own runs
    proc.wait(timeout=60)
    assert len(scratch()) == 1
    assert main([str(a) for a in _predict(ckpt, images, out)]) == 0  # the next run clears it
    assert scratch() == [] and len(list(out.iterdir())) == 4


def test_a_special_file_among_the_images_is_named_not_read(runs, p1_tiny, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(p1_tiny / "val_50", images)
    os.mkfifo(images / "0_99.png")  # opening it would wait for a writer forever
    argv = [
        str(a) for a in _predict(runs[0] / "checkpoints" / "best.ckpt", images, tmp_path / "p.csv")
    ]
    done = subprocess.run(
        [sys.executable, "-m", "vislab", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert f"{images / '0_99.png'} is a FIFO (named pipe), not an image or a folder" in done.stderr


def test_metadata_read_from_a_file_is_checked_as_the_config_is(runs, p1_tiny, tmp_path, capsys):
    ckpt = torch.load(runs[0] / "checkpoints" / "best.ckpt", weights_only=True)
    images, out = p1_tiny / "val_50", tmp_path / "p.csv"
    for field, value, message in [
        ("std", [0.0, 0.0, 0.0], "vislab metadata std must be above 0"),
        ("num_classes", 2_000_000_000, "num_classes must be an integer from 1 to 100000"),
        ("classes", ["a"], "classes must be a list of num_classes (4) names"),
    ]:
        bad = {**ckpt, "vislab": {**ckpt["vislab"], field: value}}
        path = tmp_path / f"{field}.ckpt"
        torch.save(bad, path)
        fails(capsys, _predict(path, images, out), message)
    assert not out.exists()


def test_an_unknown_model_name_suggests_the_closest(p1_tiny, tmp_path, capsys):
    fails(
        capsys,
        train_args(p1_tiny, tmp_path / "r", 1, "--set", "model.name=timm/convnext_tiy"),
        "did you mean timm/convnext_tiny",
    )


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("utf-16", 'is UTF-16 text (Excel\'s "Unicode Text"): byte 0xff at offset 0'),
        ("latin-1", "is not UTF-8 text: byte 0xe9 at offset"),
    ],
)
def test_a_csv_in_another_encoding_is_named_with_its_encoding(tmp_path, capsys, encoding, message):
    gt = tmp_path / "gt.csv"
    gt.write_text("filename,label\ncafé_1.png,0\n", encoding=encoding)
    pred = tmp_path / "pred.csv"
    pred.write_text("filename,label\ncafé_1.png,0\n")
    fails(capsys, ["evaluate", "--pred", pred, "--gt", gt], f"{gt} {message}")
