"""`vislab evaluate`, `overlay` and `progress` over a data set's own spec: 3- and 4-class sets
with index, palette-mode and RGB masks and 255 = ignore pixels, scored against a numpy
reference written here; the spec from --config or --ckpt; classification with class names."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vislab.cli import main
from vislab.data.spec import DatasetSpec

SPEC3 = DatasetSpec(["sky", "road", "tree"], [[0, 0, 255], [128, 64, 128], [0, 200, 0]])
SPEC4 = DatasetSpec(["background", "car", "person", "bicycle"])  # VOC colours, 255 = ignore


def reference(truths, preds, k, ignore=255):
    """Per-class IoU (None when absent from both), mean over the present classes, pixel accuracy:
    pooled over all pixels whose truth is not the ignore index."""
    t = np.concatenate([m.ravel() for m in truths])
    p = np.concatenate([m.ravel() for m in preds])
    keep = t != ignore
    t, p = t[keep], p[keep]
    iou = []
    for c in range(k):
        union = np.sum((t == c) | (p == c))
        iou.append(np.sum((t == c) & (p == c)) / union if union else None)
    present = [v for v in iou if v is not None]
    return iou, float(np.mean(present)), float(np.mean(t == p))


def random_masks(rng, k, n=3, shape=(24, 32), absent=None):
    """n (truth, prediction) index pairs: blocks of classes, ~30% of the prediction wrong, a
    band of ignore pixels in the truth; class `absent` nowhere."""
    classes = [c for c in range(k) if c != absent]
    pairs = []
    for _ in range(n):
        blocks = rng.choice(classes, size=(shape[0] // 4, shape[1] // 4))
        truth = np.kron(blocks, np.ones((4, 4), dtype=np.int64)).astype(np.uint8)
        pred = np.where(rng.random(shape) < 0.3, rng.choice(classes, size=shape), truth)
        truth[rng.integers(0, shape[0]), :] = 255
        pairs.append((truth, pred.astype(np.uint8)))
    return pairs


def write_index(mask, path, spec, fmt):
    """A mask file: index (mode L), palette (mode P, the spec's colours) or rgb."""
    if fmt == "index":
        Image.fromarray(mask).save(path)
    else:
        spec.write_mask(mask, path, fmt="palette" if fmt == "palette" else "rgb")


def write_set(root, pairs, spec, truth_fmt, pred_fmt, layout="split"):
    """Truth as an images/ + masks/ folder (or a folder of xxxx_mask.png), predictions as
    xxxx.png; returns (truth folder, prediction folder)."""
    gt, pred = root / "val", root / "pred"
    masks = gt / "masks" if layout == "split" else gt
    masks.mkdir(parents=True), pred.mkdir()
    if layout == "split":
        (gt / "images").mkdir()
    for i, (truth, guess) in enumerate(pairs):
        name = f"{i:04d}.png" if layout == "split" else f"{i:04d}_mask.png"
        write_index(truth, masks / name, spec, truth_fmt)
        write_index(guess, pred / f"{i:04d}.png", spec, pred_fmt)
    return gt, pred


def recipe(path, spec):
    path.write_text(
        "task: segmentation\nmodel:\n  name: lraspp_mobilenet_v3\ndata:\n"
        f"  classes: {json.dumps(spec.classes)}\n"
        f"  palette: {json.dumps([list(c) for c in spec.palette])}\n"
    )
    return path


def run_json(capsys, *args):
    capsys.readouterr()
    assert main(["evaluate", *map(str, args)]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "spec, truth_fmt, pred_fmt, absent",
    [
        (SPEC3, "index", "index", None),
        (SPEC3, "palette", "rgb", None),
        (SPEC4, "palette", "palette", 3),
        (SPEC4, "index", "rgb", 2),
    ],
)
def test_scores_over_a_recipes_spec_equal_the_numpy_reference(
    tmp_path, capsys, spec, truth_fmt, pred_fmt, absent
):
    pairs = random_masks(np.random.default_rng(spec.num_classes), spec.num_classes, absent=absent)
    gt, pred = write_set(tmp_path, pairs, spec, truth_fmt, pred_fmt)
    out = tmp_path / "scores.json"
    cfg = recipe(tmp_path / "r.yaml", spec)
    printed = run_json(
        capsys, "--pred", pred, "--gt", gt, "--config", cfg, "--json", out, "--verbose"
    )
    got = json.loads(out.read_text())
    iou, miou, acc = reference([t for t, _ in pairs], [p for _, p in pairs], spec.num_classes)
    assert set(got) == {
        "miou",
        "miou_present",
        "iou",
        "absent_classes",
        "pixel_acc",
        "confusion",
        "n_masks",
    }
    assert list(got["iou"]) == spec.classes
    for name, v in zip(spec.classes, iou, strict=True):
        assert got["iou"][name] == (None if v is None else pytest.approx(v, abs=1e-12))
    assert got["miou"] == pytest.approx(miou, abs=1e-12)
    assert got["pixel_acc"] == pytest.approx(acc, abs=1e-12)
    assert got["absent_classes"] == ([] if absent is None else [spec.classes[absent]])
    for name, v in zip(spec.classes, iou, strict=True):
        line = next(x for x in printed.splitlines() if x.startswith(name + " "))
        assert (f"{v:.5f}" in line) if v is not None else ("absent" in line)
    assert f"mIoU: {miou:.5f}" in printed and f"pixel accuracy: {acc:.4f}" in printed
    assert "class #0" not in printed  # the course's lines are the course's set's only


def write_checkpoint(path, spec, task="segmentation"):
    import torch

    from vislab.infer.meta import ModelMeta

    meta = ModelMeta(
        task=task,
        model="lraspp_mobilenet_v3",
        num_classes=spec.num_classes,
        model_kwargs={},
        classes=list(spec.classes),
        mean=[0.5] * 3,
        std=[0.25] * 3,
        image_size=[32, 32],
        dataset=spec.to_dict() if task == "segmentation" else None,
    )
    torch.save({"vislab": meta.to_dict(), "state_dict": {}}, path)
    return meta


def exported(path, meta):
    """A .safetensors or .onnx file carrying meta, as `vislab export` stores it."""
    text = json.dumps(meta.to_dict())
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({"w": np.zeros(1, dtype=np.float32)}, str(path), metadata={"vislab": text})
    else:
        import onnx
        from onnx import TensorProto, helper

        x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "g", [x], [y])
        model = helper.make_model(graph)
        helper.set_model_props(model, {"vislab": text})
        onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors", ".onnx"])
def test_ckpt_gives_the_spec(tmp_path, capsys, suffix):
    pairs = random_masks(np.random.default_rng(7), 4, n=2)
    gt, pred = write_set(tmp_path, pairs, SPEC4, "palette", "palette", layout="course")
    meta = write_checkpoint(tmp_path / "best.ckpt", SPEC4)
    model = tmp_path / f"best{suffix}"
    if suffix != ".ckpt":
        exported(model, meta)
    out = tmp_path / "s.json"
    run_json(capsys, "--pred", pred, "--gt", gt, "--ckpt", model, "--json", out)
    iou, miou, _ = reference([t for t, _ in pairs], [p for _, p in pairs], 4)
    got = json.loads(out.read_text())
    assert list(got["iou"]) == SPEC4.classes and got["miou"] == pytest.approx(miou, abs=1e-12)


def test_a_recipe_declaring_nothing_and_no_source_are_the_course(tmp_path, capsys):
    from vislab.course.landcover import index_to_rgb

    rng = np.random.default_rng(3)
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    for i in range(2):
        truth = rng.integers(0, 7, (16, 16)).astype(np.uint8)
        Image.fromarray(index_to_rgb(truth)).save(gt / f"{i:04d}_mask.png")
        Image.fromarray(index_to_rgb(truth[::-1].copy())).save(pred / f"{i:04d}.png")
    plain = run_json(capsys, "--pred", pred, "--gt", gt)
    (tmp_path / "r.yaml").write_text("task: segmentation\n")
    assert run_json(capsys, "--pred", pred, "--gt", gt, "--config", tmp_path / "r.yaml") == plain
    assert plain.startswith("class #0 : ") and "mean_iou: " in plain


def test_evaluate_with_a_recipe_imports_no_torch(tmp_path):
    pairs = random_masks(np.random.default_rng(1), 3, n=1)
    gt, pred = write_set(tmp_path, pairs, SPEC3, "index", "palette")
    cfg = recipe(tmp_path / "r.yaml", SPEC3)
    code = (
        "import sys\nfrom vislab.cli import main\n"
        f"assert main(['evaluate', '--pred', {str(pred)!r}, '--gt', {str(gt)!r}, "
        f"'--config', {str(cfg)!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def fails(capsys, args, *needles):
    capsys.readouterr()
    assert main(["evaluate", *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_bad_masks_are_one_line_errors_naming_the_file(tmp_path, capsys):
    pairs = random_masks(np.random.default_rng(2), 3, n=2)
    gt, pred = write_set(tmp_path, pairs, SPEC3, "index", "rgb")
    cfg = recipe(tmp_path / "r.yaml", SPEC3)
    rgb = SPEC3.to_rgb(pairs[1][1])
    rgb[3, 5] = (255, 255, 255)  # no class's colour
    Image.fromarray(rgb).save(pred / "0001.png")
    fails(capsys, ["--pred", pred, "--gt", gt, "--config", cfg], "0001.png", "[255, 255, 255]")
    guess = pairs[1][1].copy()
    guess[pairs[1][0] != 255] = 255  # the ignore index where the truth has a class
    Image.fromarray(guess).save(pred / "0001.png")
    fails(capsys, ["--pred", pred, "--gt", gt, "--config", cfg], "0001.png", "ignore index")
    (tmp_path / "m.ckpt").write_bytes(b"")
    both = ["--pred", pred, "--gt", gt, "--config", cfg, "--ckpt", tmp_path / "m.ckpt"]
    fails(capsys, both, "not both")


def test_tif_predictions_pair_with_png_truth_by_stem(tmp_path, capsys):
    pairs = random_masks(np.random.default_rng(4), 3, n=2)
    gt, pred = write_set(tmp_path, pairs, SPEC3, "index", "index")
    for f in pred.glob("*.png"):
        Image.open(f).save(f.with_suffix(".tif"))
        f.unlink()
    out = tmp_path / "s.json"
    run_json(capsys, "--pred", pred, "--gt", gt, "--config", recipe(tmp_path / "r.yaml", SPEC3),
             "--json", out)  # fmt: skip
    assert json.loads(out.read_text())["miou"] == pytest.approx(
        reference([t for t, _ in pairs], [p for _, p in pairs], 3)[1], abs=1e-12
    )


# -- classification ----------------------------------------------------------------------------
def _csv(path, rows):
    path.write_text("filename,label\n" + "".join(f"{n},{label}\n" for n, label in rows))
    return path


def class_reference(truth, pred, classes):
    t = np.array([classes.index(truth[n]) for n in sorted(truth)])
    p = np.array([classes.index(pred[n]) for n in sorted(truth)])
    per = {c: float(np.mean(p[t == i] == i)) for i, c in enumerate(classes) if (t == i).any()}
    cm = [
        [int(np.sum((t == i) & (p == j))) for j in range(len(classes))] for i in range(len(classes))
    ]
    return float(np.mean(t == p)), per, cm


def test_names_csv_against_names_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    classes = ["cat", "dog", "owl"]
    truth = {f"{i:03d}.png": classes[rng.integers(0, 3)] for i in range(30)}
    pred = {n: (c if rng.random() < 0.6 else classes[rng.integers(0, 3)]) for n, c in truth.items()}
    gt_csv, pred_csv = (
        _csv(tmp_path / "gt.csv", truth.items()),
        _csv(tmp_path / "p.csv", pred.items()),
    )
    out = tmp_path / "ev"
    assert main(["evaluate", "--pred", str(pred_csv), "--gt", str(gt_csv), "--out", str(out)]) == 0
    got = json.loads((out / "metrics.json").read_text())
    acc, per, cm = class_reference(truth, pred, classes)
    assert got["accuracy"] == pytest.approx(acc)
    assert {k: v for k, v in got["per_class_accuracy"].items() if v is not None} == pytest.approx(
        per
    )
    assert got["confusion"] == cm
    lines = (out / "confusion.csv").read_text().splitlines()
    assert lines[0] == "true\\pred,cat,dog,owl" and lines[1] == "cat," + ",".join(map(str, cm[0]))
    assert "cat:" in capsys.readouterr().out


def test_image_folder_tree_truth_in_the_checkpoints_class_order(tmp_path, capsys):
    rng = np.random.default_rng(1)
    tree = tmp_path / "val"
    classes = ["zebra", "ant", "moth", "bee"]  # the model's order, not sorted
    truth = {}
    for i in range(24):
        c = classes[i % 4]
        (tree / c).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tree / c / f"{i:03d}.png")
        truth[f"{i:03d}.png"] = c
    pred = {n: (c if rng.random() < 0.7 else classes[rng.integers(0, 4)]) for n, c in truth.items()}
    pred_csv = _csv(tmp_path / "p.csv", pred.items())
    write_checkpoint(tmp_path / "cls.ckpt", DatasetSpec(classes), task="classification")
    out = tmp_path / "ev"
    args = ["--pred", pred_csv, "--gt", tree, "--out", out, "--ckpt", tmp_path / "cls.ckpt"]
    assert main(["evaluate", *map(str, args)]) == 0
    got = json.loads((out / "metrics.json").read_text())
    acc, per, cm = class_reference(truth, pred, classes)
    assert got["accuracy"] == pytest.approx(acc) and got["confusion"] == cm
    assert list(got["per_class_accuracy"]) == classes
    assert got["per_class_accuracy"] == pytest.approx(per)
    # without --ckpt: the tree's sorted folders
    assert main(["evaluate", "--pred", str(pred_csv), "--gt", str(tree), "--out", str(out)]) == 0
    got = json.loads((out / "metrics.json").read_text())
    assert got["confusion"] == class_reference(truth, pred, sorted(classes))[2]
    _csv(pred_csv, [*list(pred.items())[:-1], ("023.png", "wasp")])
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(pred_csv), "--gt", str(tree)]) == 2
    err = capsys.readouterr().err
    assert "023.png is predicted as 'wasp'" in err and err.count("\n") == 1


# -- overlay -----------------------------------------------------------------------------------
def test_overlay_draws_a_palette_mask_in_the_specs_colours(tmp_path, capsys):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(40, 48, 3)).astype(np.uint8)
    blocks = rng.integers(0, 3, size=(4, 4))
    mask = np.kron(blocks, np.ones((10, 12), dtype=np.int64)).astype(np.uint8)
    mask[:10, :12] = 255  # ignored: left as the image is
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True), (root / "masks").mkdir()
    Image.fromarray(image).save(root / "images" / "t1.png")
    SPEC3.write_mask(mask, root / "masks" / "t1.png", fmt="palette")
    cfg = recipe(tmp_path / "r.yaml", SPEC3)
    out = tmp_path / "o"
    args = ["overlay", "--image", root, "--mask", root, "--out", out, "--config", cfg]
    assert main([*map(str, args)]) == 0
    got = np.asarray(Image.open(out / "t1.png"))
    colors = np.asarray(SPEC3.palette, dtype=np.float64)
    # pixels more than 5 from any other value along their row and column: the tint alone
    far = np.ones(mask.shape, bool)
    for d in range(1, 6):
        for axis in (0, 1):
            for shift in (d, -d):
                far &= np.roll(mask, shift, axis) == mask
    for c in range(3):
        inner = far & (mask == c)
        assert inner.any()
        tint = (image[inner].astype(np.float64) * (1 - 0.3) + colors[c] * 0.3).astype(np.uint8)
        assert np.array_equal(got[inner], tint)
        # the column where a region starts (after another class) is its solid colour
        starts = np.zeros(mask.shape, bool)
        starts[:, 1:] = (mask[:, 1:] == c) & (mask[:, :-1] != c) & (mask[:, :-1] != 255)
        assert np.array_equal(got[starts], np.broadcast_to(SPEC3.palette[c], got[starts].shape))
    assert np.array_equal(got[:5, :7], image[:5, :7])


def test_progress_default_tiles_follow_the_spec():
    from vislab.analysis.progress import DEFAULT_TILES, default_tiles
    from vislab.data.spec import builtin_spec

    ids = [f"{i:04d}" for i in range(120)]
    assert default_tiles(ids, builtin_spec("landcover")) == DEFAULT_TILES
    assert default_tiles(ids, SPEC3) == ("0000", "0001", "0002")


# -- progress ----------------------------------------------------------------------------------
def write_split_set(folder, n, seed, size=48):
    """folder/images (.png) + folder/masks (palette-mode, SPEC3's colours, 255 = ignore): each
    tile's colour tells its class, so a few epochs learn something."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True), (folder / "masks").mkdir()
    colours = np.asarray(SPEC3.palette, dtype=np.float64)
    for i in range(n):
        blocks = rng.integers(0, 3, size=(4, 4))
        mask = np.kron(blocks, np.ones((size // 4, size // 4), dtype=np.int64)).astype(np.uint8)
        image = np.clip(colours[mask] + rng.normal(0, 12, (size, size, 3)), 0, 255)
        Image.fromarray(image.astype(np.uint8)).save(folder / "images" / f"t{i:02d}.png")
        mask[rng.random(mask.shape) < 0.05] = 255
        SPEC3.write_mask(mask, folder / "masks" / f"t{i:02d}.png", fmt="palette")


def test_progress_scores_a_three_class_run_over_its_spec(tmp_path):
    from conftest import seg_train_args

    data, run = tmp_path / "data", tmp_path / "run"
    write_split_set(data / "train", 8, seed=0)
    write_split_set(data / "validation", 4, seed=1)
    sets = ["data.classes=[sky, road, tree]", f"data.palette={json.dumps(SPEC3.palette)}"]
    args = seg_train_args(data, run, 2)
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    assert main(["progress", str(run)]) == 0
    result = json.loads((run / "progress.json").read_text())
    tiles = ["t00", "t01", "t02"]  # not the course's 0013 0062 0104: the first three
    assert list(result["miou"]) == tiles and list(result["truth_share"]) == SPEC3.classes
    masks = tmp_path / "pred"
    final = sorted((run / "checkpoints").glob("epoch_*.ckpt"))[-1]
    predict = ["predict", "--ckpt", str(final), "--images", str(data / "validation")]
    assert main([*predict, "--out", str(masks), "--format", "index"]) == 0
    truths = [SPEC3.read_mask(data / "validation" / "masks" / f"{t}.png")[0] for t in tiles]
    for t, truth in zip(tiles, truths, strict=True):
        pred = np.asarray(Image.open(masks / f"{t}.png"))
        iou, miou, _ = reference([truth], [pred], 3)
        assert result["miou"][t][-1] == pytest.approx(miou, abs=1e-12)
    kept = np.concatenate([m[m != 255] for m in truths])
    shares = [float(np.mean(kept == c)) for c in range(3)]
    assert list(result["truth_share"].values()) == pytest.approx(shares)
