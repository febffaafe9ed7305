"""`vislab predict` follows the model's data set spec and classes, and keeps each tile's size:
masks in the spec's colours or indices, tiles of any size predicted at the training's scale in
overlapping windows, classifiers writing class names. References are computed here."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vislab.cli import main
from vislab.data.batches import normalize
from vislab.data.spec import DatasetSpec
from vislab.errors import VislabError
from vislab.infer.checkpoint import load_model
from vislab.infer.meta import ModelMeta
from vislab.models import create_model

SPEC = DatasetSpec(["sky", "road", "tree"], [[10, 20, 30], [200, 0, 0], [0, 160, 90]])
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def _save(meta: ModelMeta, model: torch.nn.Module, path):
    """A checkpoint as training writes it: plain data, the model's weights under "model."."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"vislab": meta.to_dict(), "state_dict": state, "epoch": 3}, path)
    return path


@pytest.fixture(scope="module")
def seg_ckpt(tmp_path_factory):
    """A 3-class segmenter trained (so its metadata says) on 64x64 tiles downscaled to 32x32;
    untrained, but its classes vary over a tile."""
    torch.manual_seed(0)
    kwargs = {"encoder": "timm/mobilenetv3_small_050", "width": 32}
    model = create_model("fpn", num_classes=3, **kwargs).eval()
    meta = ModelMeta(
        task="segmentation",
        model="fpn",
        num_classes=3,
        model_kwargs=kwargs,
        classes=list(SPEC.classes),
        mean=MEAN,
        std=STD,
        image_size=[32, 32],
        dataset=SPEC.to_dict(),
        scale=[0.5, 0.5],
        window=[32, 32],
    )
    return _save(meta, model, tmp_path_factory.mktemp("seg") / "best.ckpt")


def _tile(path, h, w, seed):
    """A smooth random RGB tile (blobs of colour, so the model's classes vary over it)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((w, h), Image.BILINEAR).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


def _input(rgb):
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]
    return normalize(x, torch.tensor(MEAN), torch.tensor(STD))


def _model_logits(model, x, tta):
    """The model's logits at x's size; tta: the mean over the 8 rotations and mirrors."""
    if not tta:
        return model(x)["out"].float()
    total = 0
    for k in range(4):
        for mirror in (False, True):
            v = torch.rot90(x, k, (2, 3))
            v = v.flip(3) if mirror else v
            y = model(v)["out"].float()
            y = y.flip(3) if mirror else y
            total = total + torch.rot90(y, -k, (2, 3))
    return total / 8


@torch.inference_mode()
def _reference(ckpt, rgb, tta=False):
    """Argmax of the tile: halved (the training's scale), windows of 32 every 21 pixels (2/3),
    the last flush with the edge, logits averaged where they overlap, resized back."""
    model, meta = load_model(ckpt)
    x = _input(rgb)
    h, w = rgb.shape[:2]
    small = F.interpolate(x, size=(round(h / 2), round(w / 2)), mode="bilinear", antialias=True)
    sh, sw = small.shape[-2:]

    def starts(n):
        out = list(range(0, n - 32, 21)) + [n - 32]
        return out if n > 32 else [0]

    total = torch.zeros(1, 3, sh, sw)
    count = torch.zeros(sh, sw)
    for y in starts(sh):
        for x0 in starts(sw):
            crop = small[:, :, y : y + min(32, sh), x0 : x0 + min(32, sw)]
            total[..., y : y + crop.shape[2], x0 : x0 + crop.shape[3]] += _model_logits(
                model, crop, tta
            )
            count[y : y + crop.shape[2], x0 : x0 + crop.shape[3]] += 1
    logits = F.interpolate(total / count, size=(h, w), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].numpy()


@torch.inference_mode()
def _whole(ckpt, rgb):
    """Argmax of the tile resized whole to the training size (what predict did before)."""
    model, _ = load_model(ckpt)
    x = F.interpolate(_input(rgb), size=(32, 32), mode="bilinear", antialias=True)
    logits = F.interpolate(model(x)["out"], size=rgb.shape[:2], mode="bilinear")
    return logits.argmax(1)[0].numpy()


def _predict(ckpt, images, out, *extra):
    args = ["predict", "--ckpt", str(ckpt), "--images", str(images), "--out", str(out)]
    assert main([*args, "--threads", "1", *extra]) == 0


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    """A .png and a .tif tile at the training's own 64x64, a 3x larger one (192x192) and a
    non-square one (96x160), as RGB arrays by id."""
    folder = tmp_path_factory.mktemp("tiles")
    return folder, {
        "a": _tile(folder / "a.png", 64, 64, 0),
        "b": _tile(folder / "b.tif", 64, 64, 1),
        "big": _tile(folder / "big.png", 192, 192, 2),
        "wide": _tile(folder / "wide.tif", 96, 160, 3),
    }


def test_masks_are_palette_pngs_of_the_models_argmax_at_each_tiles_size(seg_ckpt, tiles, tmp_path):
    folder, rgbs = tiles
    _predict(seg_ckpt, folder, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.png",
        "b.png",
        "big.png",
        "wide.png",
    ]
    for tile, rgb in rgbs.items():
        with Image.open(tmp_path / "out" / f"{tile}.png") as im:
            assert im.mode == "P"
            assert im.getpalette()[:9] == [10, 20, 30, 200, 0, 0, 0, 160, 90]
            written = np.asarray(im)
        expected = _reference(seg_ckpt, rgb)
        assert written.shape == rgb.shape[:2]  # the tile's own size and aspect
        assert (written == expected).mean() > 0.999  # the same up to float ties
    assert len(np.unique(expected)) > 1  # a model whose classes vary: the test can tell


def test_a_large_tile_is_predicted_in_windows_at_the_training_scale(seg_ckpt, tiles):
    _, rgbs = tiles
    for tile in ("big", "wide"):  # 3x the training's tiles, and a non-square one
        slid, whole = _reference(seg_ckpt, rgbs[tile]), _whole(seg_ckpt, rgbs[tile])
        assert (slid != whole).mean() > 0.05  # the windows are not the old squashing


def test_formats_rgb_and_index(seg_ckpt, tiles, tmp_path):
    folder, rgbs = tiles
    _predict(seg_ckpt, folder, tmp_path / "rgb", "--format", "rgb")
    _predict(seg_ckpt, folder, tmp_path / "index", "--format", "index")
    palette = np.asarray(SPEC.palette, dtype=np.uint8)
    for tile in rgbs:
        with Image.open(tmp_path / "index" / f"{tile}.png") as im:
            assert im.mode == "L"
            index = np.asarray(im)
        with Image.open(tmp_path / "rgb" / f"{tile}.png") as im:
            assert im.mode == "RGB"
            assert (np.asarray(im) == palette[index]).all()
        assert (index == _reference(seg_ckpt, rgbs[tile])).mean() > 0.999


def test_tta_averages_the_eight_views_of_every_window(seg_ckpt, tiles, tmp_path):
    folder, rgbs = tiles
    _predict(seg_ckpt, folder, tmp_path / "tta", "--tta", "--format", "index")
    for tile in ("big", "wide"):
        written = np.asarray(Image.open(tmp_path / "tta" / f"{tile}.png"))
        assert (written == _reference(seg_ckpt, rgbs[tile], tta=True)).mean() > 0.999


def test_a_checkpoint_without_scale_resizes_the_tile_whole_as_before(seg_ckpt, tiles, tmp_path):
    ckpt = torch.load(seg_ckpt, weights_only=True)
    ckpt["vislab"] = {k: v for k, v in ckpt["vislab"].items() if k not in ("scale", "window")}
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    folder, rgbs = tiles
    _predict(old, folder, tmp_path / "out", "--format", "index")
    written = np.asarray(Image.open(tmp_path / "out" / "big.png"))
    assert (written == _whole(seg_ckpt, rgbs["big"])).mean() > 0.999


def test_exports_carry_the_spec_and_the_windows(seg_ckpt, tiles, tmp_path):
    folder, rgbs = tiles
    (tmp_path / "m").mkdir()
    ckpt = tmp_path / "m" / "best.ckpt"
    ckpt.write_bytes(seg_ckpt.read_bytes())
    assert main(["export", "--ckpt", str(ckpt), "--format", "onnx"]) == 0
    _, meta = load_model(ckpt.with_suffix(".onnx"))
    assert meta.dataset == SPEC.to_dict() and meta.spec() == SPEC
    assert (meta.scale, meta.window) == ([0.5, 0.5], [32, 32])
    _predict(ckpt.with_suffix(".onnx"), folder, tmp_path / "onnx", "--format", "index")
    for tile in ("a", "wide"):
        written = np.asarray(Image.open(tmp_path / "onnx" / f"{tile}.png"))
        assert (written == _reference(seg_ckpt, rgbs[tile])).mean() > 0.999


def test_scale_and_window_come_together(seg_ckpt):
    data = torch.load(seg_ckpt, weights_only=True)["vislab"]
    with pytest.raises(VislabError, match="scale and window"):
        ModelMeta.from_dict({**data, "window": None}, "x.ckpt")
    with pytest.raises(VislabError, match="window must be two positive integers"):
        ModelMeta.from_dict({**data, "window": [32, 0]}, "x.ckpt")


def test_a_classifier_writes_its_class_names_for_images_of_any_size(tmp_path):
    torch.manual_seed(0)
    model = create_model("model_a", num_classes=4).eval()
    names = ["cat", "dog", "fox", "owl"]
    meta = ModelMeta(
        task="classification",
        model="model_a",
        num_classes=4,
        model_kwargs={},
        classes=names,
        mean=MEAN,
        std=STD,
        image_size=[32, 32],
    )
    ckpt = _save(meta, model, tmp_path / "cls.ckpt")
    folder = tmp_path / "images"
    folder.mkdir()
    sizes = {"p.png": (32, 32), "q.jpg": (48, 40), "r.png": (20, 36)}
    expected = {}
    for i, (name, (h, w)) in enumerate(sizes.items()):
        _tile(folder / name, h, w, i)
        rgb = np.asarray(Image.open(folder / name).convert("RGB").resize((32, 32), Image.BILINEAR))
        with torch.inference_mode():
            expected[name] = names[int(model(_input(rgb)).argmax(1))]
    _predict(ckpt, folder, tmp_path / "pred.csv")
    with (tmp_path / "pred.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "label"]
    assert dict(rows[1:]) == expected


def test_format_is_for_segmenters(tmp_path, capsys):
    meta = ModelMeta("classification", "model_a", 2, {}, ["a", "b"], MEAN, STD, [32, 32])
    ckpt = _save(meta, create_model("model_a", num_classes=2), tmp_path / "c.ckpt")
    folder = tmp_path / "i"
    folder.mkdir()
    _tile(folder / "x.png", 32, 32, 0)
    args = ["predict", "--ckpt", str(ckpt), "--images", str(folder), "--out", str(tmp_path / "p")]
    assert main([*args, "--format", "rgb"]) != 0
    assert "--format is for a segmenter's masks" in capsys.readouterr().err
