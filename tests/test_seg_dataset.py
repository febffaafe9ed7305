"""A segmentation data set of one's own: images/ + masks/ folders, 3 or 4 declared classes,
index, palette-mode and RGB masks with ignore pixels, trained through the CLI."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import REPO, seg_train_args
from PIL import Image

from vislab.cli import main
from vislab.config import load_config
from vislab.course.landcover import LANDCOVER
from vislab.data.batches import normalize
from vislab.data.spec import DatasetSpec
from vislab.data.synthetic import write_p2_layout
from vislab.data.tiles import load_tiles, resolve_spec
from vislab.errors import VislabError
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import prepare, segment_logits
from vislab.infer.meta import ModelMeta
from vislab.run_folder import RunFolder
from vislab.train.lovasz import lovasz_softmax
from vislab.train.segmentation import SegmentationTask

NAMES = ["sky", "road", "tree", "water"]
PALETTE = [[10, 20, 30], [200, 40, 40], [40, 200, 40], [40, 40, 200]]  # the declared colours
IGNORE = 255
IGNORE_RGB = [224, 224, 192]
# mask format -> (image suffix, mask suffix): every suffix the layout takes is used once
SUFFIXES = {"index": (".tif", ".png"), "palette": (".png", ".png"), "rgb": (".jpg", ".tif")}


def _tiles(k: int, n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 3) images whose colour tells the class, (n, size, size) masks of a few
    Voronoi regions of classes 0..k-1, about 8% of their pixels IGNORE."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    colours = np.array(PALETTE[:k], dtype=np.float64)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        centers = rng.uniform(0, size, (5, 2))
        classes = rng.permutation(np.resize(np.arange(k), 5))
        d = (yy[..., None] - centers[:, 0]) ** 2 + (xx[..., None] - centers[:, 1]) ** 2
        mask = classes[d.argmin(-1)].astype(np.uint8)
        images[i] = np.clip(colours[mask] + rng.normal(0, 12, (size, size, 3)), 0, 255)
        mask[rng.random((size, size)) < 0.08] = IGNORE
        masks[i] = mask
    return images, masks


def _write_mask(mask: np.ndarray, path, fmt: str) -> None:
    if fmt == "index":
        Image.fromarray(mask).save(path)  # mode L
    elif fmt == "palette":
        im = Image.fromarray(mask)
        flat = np.zeros((256, 3), np.uint8)
        flat[: len(PALETTE)] = PALETTE
        im.putpalette(flat.reshape(-1).tolist())  # mode P, as Pascal VOC's masks
        im.save(path)
    else:  # RGB; ignored pixels in the colour VOC draws its boundaries (index 255) with
        lut = np.zeros((256, 3), np.uint8)
        lut[: len(PALETTE)], lut[IGNORE] = PALETTE, IGNORE_RGB
        Image.fromarray(lut[mask]).save(path)


def write_split(folder, k, n, fmt, size=48, seed=0) -> np.ndarray:
    """folder/images + folder/masks of n tiles, about 8% of each mask ignored; returns the
    masks written."""
    images, masks = _tiles(k, n, size, seed)
    image_suffix, mask_suffix = SUFFIXES[fmt]
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        Image.fromarray(image).save(folder / "images" / f"t{i:02d}{image_suffix}")
        _write_mask(mask, folder / "masks" / f"t{i:02d}{mask_suffix}", fmt)
    return masks


def declared(k: int, fmt: str) -> DatasetSpec:
    return resolve_spec(None, classes=NAMES[:k], palette=PALETTE[:k] if fmt == "rgb" else None)


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("fmt", ["index", "palette", "rgb"])
def test_masks_decode_to_the_generated_indices(tmp_path, k, fmt):
    written = write_split(tmp_path, k, 3, fmt)
    tiles = load_tiles(tmp_path, spec=declared(k, fmt))
    assert tiles.ids == ["t00", "t01", "t02"]
    assert np.array_equal(tiles.masks, written)
    assert (written == IGNORE).any() and set(np.unique(written)) <= {*range(k), IGNORE}
    # downscaled nearest: every other pixel of 48 is the one a 24 pixel grid lands on
    small = load_tiles(tmp_path, size=24, spec=declared(k, fmt))
    assert np.array_equal(small.masks, written[:, 1::2, 1::2])


@pytest.mark.parametrize(
    ("fmt", "value", "message"),
    [
        ("rgb", [1, 2, 3], r"t01.tif: colour \[1, 2, 3\] at \(x=5, y=2\) is no class"),
        ("index", [3], r"t01.png: value 3 at \(x=5, y=2\) is neither a class \(0..2\)"),
    ],
)
def test_a_colour_or_index_of_no_class_is_one_line_naming_the_file(tmp_path, fmt, value, message):
    write_split(tmp_path, 3, 2, fmt)
    path = tmp_path / "masks" / f"t01{SUFFIXES[fmt][1]}"
    mask = np.array(Image.open(path))
    mask[2, 5] = value if fmt == "rgb" else value[0]
    Image.fromarray(mask).save(path)
    with pytest.raises(VislabError, match=message) as e:
        load_tiles(tmp_path, spec=declared(3, fmt))
    assert "\n" not in str(e.value)


def test_a_set_without_declared_classes_or_with_a_palette_alone_is_refused(tmp_path):
    write_split(tmp_path, 3, 1, "index")
    with pytest.raises(VislabError, match=r"set data.classes .*and data.palette for RGB"):
        resolve_spec(tmp_path)
    with pytest.raises(VislabError, match=r"data.palette: give data.classes too"):
        resolve_spec(tmp_path, palette=PALETTE[:3])
    with pytest.raises(VislabError, match=r"data.spec and data.classes"):
        resolve_spec(tmp_path, spec="landcover", classes=NAMES[:3])


def test_the_course_layout_without_declarations_is_land_cover(tmp_path):
    write_p2_layout(tmp_path, n_train=1, n_val=1, size=16)
    assert resolve_spec(tmp_path / "train") is LANDCOVER
    assert resolve_spec(tmp_path / "train", spec="landcover") is LANDCOVER
    # the built-in spec has its own ignore index and mask format: the recipe's would go unused
    for spec, why in ((None, "the course's layout"), ("landcover", "data.spec landcover")):
        with pytest.raises(VislabError, match=f"data.ignore_index: 0 would go unused: {why}"):
            resolve_spec(tmp_path / "train", spec=spec, ignore_index=0)
        with pytest.raises(VislabError, match="data.mask_format: 'index' would go unused"):
            resolve_spec(tmp_path / "train", spec=spec, mask_format="index")
    # a run folder written before data sets declared their own: land-cover
    cfg = load_config(REPO / "configs" / "p2_cpu.yaml")
    RunFolder(tmp_path / "old").write_config(cfg)
    assert RunFolder(tmp_path / "old").spec() == LANDCOVER


def _task(spec: DatasetSpec, weights=None, sets=()) -> SegmentationTask:
    cfg = load_config(REPO / "configs" / "p2_cpu.yaml", list(sets))
    meta = ModelMeta(
        task="segmentation",
        model=cfg.model.name,
        num_classes=spec.num_classes,
        model_kwargs={},
        classes=spec.classes,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        image_size=[8, 8],
        class_weights=weights,
        dataset=spec.to_dict(),
    )
    return SegmentationTask.from_config(cfg, meta)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_loss_leaves_the_ignored_pixels_out(smoothing):
    spec = DatasetSpec(NAMES[:3])
    weights = [1.0, 0.5, 2.0]
    task = _task(spec, weights, [f"optim.label_smoothing={smoothing}"])
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, generator=g)
    y = torch.randint(0, 3, (2, 6, 6), generator=g)
    y[torch.rand(2, 6, 6, generator=g) < 0.3] = IGNORE
    keep = y != IGNORE
    # the reference: the kept pixels alone, as a list of (pixel, class) rows
    expected = F.cross_entropy(
        logits.permute(0, 2, 3, 1)[keep],
        y[keep],
        weight=torch.tensor(weights),
        label_smoothing=smoothing,
    )
    assert task._loss(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)
    # a batch of ignored pixels only: 0, with a gradient, not 0/0
    logits.requires_grad_(True)
    nothing = task._loss(logits, torch.full((2, 6, 6), IGNORE))
    nothing.backward()
    assert nothing.item() == 0.0 and logits.grad is not None


def test_lovasz_leaves_the_ignored_pixels_out():
    g = torch.Generator().manual_seed(1)
    probs = torch.randn(1, 3, 8, 8, generator=g).softmax(1)
    y = torch.randint(0, 3, (1, 8, 8), generator=g)
    y[0, :3] = IGNORE
    keep = (y != IGNORE)[0]
    kept = probs[0][:, keep][None, :, None]  # (1, C, 1, kept pixels)
    expected = lovasz_softmax(kept, y[0][keep][None, None], 3)
    assert lovasz_softmax(probs, y, 3).item() == pytest.approx(expected.item(), rel=1e-6)
    task = _task(DatasetSpec(NAMES[:3]), sets=["optim.lovasz_weight=1"])
    logits = torch.randn(1, 3, 16, 16, generator=g)
    y = torch.randint(0, 3, (1, 16, 16), generator=g)
    y[0, ::2, ::2][:4] = IGNORE  # rows of the quarter the task scores
    half = y[:, ::2, ::2]
    keep = (half != IGNORE)[0]
    probs = logits[:, :, ::2, ::2].softmax(1)[0][:, keep][None, :, None]
    expected = lovasz_softmax(probs, half[0][keep][None, None], 3)
    assert task._lovasz(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)


def _numpy_scores(truth: np.ndarray, pred: np.ndarray, k: int) -> tuple[dict, float]:
    """Per-class IoU (nan where 0/0) over the non-ignored pixels, and their mean over the
    classes present: the test's own reference."""
    keep = truth != IGNORE
    t, p = truth[keep], pred[keep]
    iou = {}
    for c in range(k):
        tp = np.sum((t == c) & (p == c))
        union = np.sum((t == c) | (p == c))
        iou[NAMES[c]] = tp / union if union else np.nan
    present = [v for v in iou.values() if not np.isnan(v)]
    return iou, float(np.mean(present))


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """A 2-epoch LR-ASPP run on 3 declared classes with index masks and ignore pixels."""
    root = tmp_path_factory.mktemp("three")
    write_split(root / "train", 3, 8, "index", seed=1)
    write_split(root / "val", 3, 3, "index", seed=2)
    out = root / "run"
    args = seg_train_args(root, out, 2, "--set", f"data.classes={NAMES[:3]}")
    assert main(args) == 0
    return root, out


def test_a_three_class_run_stores_its_spec_and_a_three_class_head(three):
    root, out = three
    spec = DatasetSpec(NAMES[:3])
    assert json.loads((out / "dataset.json").read_text()) == spec.to_dict()
    assert RunFolder(out).spec() == spec
    # config.yaml keeps the recipe as given: the number of classes is left to the data
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["num_classes"] is None
    model, meta = load_model(out / "checkpoints" / "last.ckpt")
    assert meta.num_classes == 3 and meta.classes == NAMES[:3] and meta.spec() == spec
    with torch.inference_mode():
        assert prepare(model)(torch.zeros(1, 3, 32, 32))["out"].shape[1] == 3
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val_iou_sky", "val_iou_road", "val_iou_tree", "val_miou"} <= set(header)
    counted = json.loads((out / "class_balance.json").read_text())
    masks = load_tiles(root / "train", size=32, spec=spec).masks
    assert counted["classes"] == NAMES[:3]
    assert counted["train"] == [int(np.sum(masks == c)) for c in range(3)]  # no ignored pixel


def test_the_logged_miou_is_the_checkpoints_over_the_non_ignored_pixels(three):
    root, out = three
    model, meta = load_model(out / "checkpoints" / "last.ckpt")
    val = load_tiles(root / "val", spec=meta.spec())
    x = torch.from_numpy(val.images).permute(0, 3, 1, 2)
    x = normalize(x, torch.tensor(meta.mean), torch.tensor(meta.std))
    with torch.inference_mode():
        pred = segment_logits(prepare(model), x, meta.image_size).argmax(1).numpy()
    iou, miou = _numpy_scores(val.masks, pred, 3)
    last = RunFolder(out).metrics()[-1]
    assert float(last["val_miou"]) == pytest.approx(miou, abs=1e-6)
    for name, v in iou.items():
        logged = float(last[f"val_iou_{name}"])
        assert np.isnan(logged) if np.isnan(v) else logged == pytest.approx(v, abs=1e-6)


def test_a_recipe_fixing_another_number_of_classes_is_one_line(three, tmp_path, capsys):
    root, _ = three
    sets = ["--set", f"data.classes={NAMES[:3]}", "--set", "model.num_classes=5"]
    assert main(seg_train_args(root, tmp_path / "run", 1, *sets)) == 2
    err = capsys.readouterr().err
    expected = "model.num_classes: the recipe fixes 5 classes but the data holds 3 (sky, road"
    assert expected in err
    assert err.count("\n") == 1 and not (tmp_path / "run" / "checkpoints").exists()


def test_quarter_turns_of_tiles_that_are_not_square_are_refused_not_skipped(tmp_path, capsys):
    for split, n in (("train", 4), ("val", 2)):
        write_split(tmp_path / split, 3, n, "index")
        for f in (tmp_path / split).glob("*/*"):
            Image.open(f).crop((0, 0, 48, 32)).save(f)  # 48 wide, 32 high
    sets = ["--set", f"data.classes={NAMES[:3]}", "--set", "data.image_size=null"]
    assert main(seg_train_args(tmp_path, tmp_path / "run", 1, *sets)) == 2
    err = capsys.readouterr().err
    assert "data.rot90: the training tiles are 48x32, and a quarter turn of a tile" in err
    assert err.count("\n") == 1
    # square crops of them turn
    crops = [*sets, "--set", "data.crop_size=32"]
    assert main(seg_train_args(tmp_path, tmp_path / "crops", 1, *crops)) == 0


def test_a_four_class_rgb_run_with_balanced_weights_and_lovasz(tmp_path, capsys):
    write_split(tmp_path / "train", 4, 6, "rgb", seed=3)
    write_split(tmp_path / "val", 4, 2, "rgb", seed=4)
    out = tmp_path / "run"
    sets = [f"data.classes={NAMES}", f"data.palette={PALETTE}", "optim.class_weights=balanced"]
    sets.append("optim.lovasz_weight=0.5")
    args = seg_train_args(tmp_path, out, 1, *[a for s in sets for a in ("--set", s)])
    assert main(args) == 0
    assert "class weights (balanced, from the train masks): sky " in capsys.readouterr().out
    meta = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["vislab"]
    assert meta["num_classes"] == 4 and len(meta["class_weights"]) == 4
    assert RunFolder(out).spec() == DatasetSpec(NAMES, PALETTE)


def test_weights_of_another_number_of_classes_are_refused_once_the_data_is_read(
    three, tmp_path, capsys
):
    _, run = three
    course = write_p2_layout(tmp_path / "course", n_train=2, n_val=1, size=32)
    init = run / "checkpoints" / "last.ckpt"
    args = seg_train_args(course, tmp_path / "run", 1, "--set", f"model.init={init}")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"model.init: {init} holds lraspp_mobilenet_v3 with 3 classes; the data holds 7" in err
