"""`vislab evaluate` and `vislab overlay` against the course's own scripts (shared/course:
mean_iou_evaluate.py, viz_mask.py), run as the course runs them, on generated and real masks:
the same printed lines, the same IoUs, the same overlay pixels."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import DATA, REAL_P2
from PIL import Image

from vislab.cli import main
from vislab.course.landcover import COLORS, RedPixelsWarning
from vislab.metrics.mask_scores import evaluate_masks

COURSE = DATA.parent / "course"
SCRIPTS = ("mean_iou_evaluate.py", "viz_mask.py")
MISSING = [m for m in ("imageio", "scipy", "matplotlib") if importlib.util.find_spec(m) is None]

pytestmark = [
    pytest.mark.skipif(
        not all((COURSE / s).is_file() for s in SCRIPTS), reason=f"no course scripts in {COURSE}"
    ),
    pytest.mark.skipif(bool(MISSING), reason=f"the course's scripts need {', '.join(MISSING)}"),
]

# the course's colour codes 4R + 2G + B, red (4) included, and channel values on both sides
# of its threshold at 128
LEVELS = np.array([0, 127, 128, 255], dtype=np.uint8)


def course(script: str, *args, cwd) -> str:
    """Run one of the course's scripts the way the course does; its stdout."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", str(COURSE / script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def course_module(script: str):
    spec = importlib.util.spec_from_file_location(script[:-3], COURSE / script)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy.misc and imageio.imread are deprecated
        spec.loader.exec_module(module)
    return module


def blocky_rgb(rng, shape, block=8) -> np.ndarray:
    """(H, W, 3) uint8: blocks of random channel levels (every code, red too) with scattered
    single pixels and 1-pixel lines."""
    h, w = shape
    rgb = LEVELS[rng.integers(0, 4, size=(-(-h // block), -(-w // block), 3))]
    rgb = np.repeat(np.repeat(rgb, block, 0), block, 1)[:h, :w].copy()
    dots = rng.random((h, w)) < 0.01
    rgb[dots] = LEVELS[rng.integers(0, 4, size=(int(dots.sum()), 3))]
    rgb[rng.integers(0, h), :] = LEVELS[rng.integers(0, 4, size=3)]
    rgb[:, rng.integers(0, w)] = LEVELS[rng.integers(0, 4, size=3)]
    return rgb


def save_mask(rgb: np.ndarray, path, rgba: bool) -> None:
    if rgba:  # the course reads the first three channels of RGBA masks
        rgb = np.dstack([rgb, np.full(rgb.shape[:2], 200, dtype=np.uint8)])
    Image.fromarray(rgb).save(path)


def write_mask_folders(tmp_path, rng, n=20):
    """n ground-truth / predicted pairs of 512x512 (the size mean_iou_evaluate.py assumes).
    At least 17: its np.empty array is then larger than any block malloc recycles, so the
    system hands it out zeroed and red reads as 0 (urban) as on the real validation set."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    for i in range(n):
        truth = blocky_rgb(rng, (512, 512), block=32)
        guess = truth.copy()
        wrong = np.repeat(np.repeat(rng.random((16, 16)) < 0.4, 32, 0), 32, 1)
        guess[wrong] = blocky_rgb(rng, (512, 512), block=32)[wrong]
        save_mask(truth, gt / f"{i:04d}_mask.png", rgba=i % 5 == 0)
        save_mask(guess, pred / f"{i:04d}.png", rgba=i % 7 == 0)
    return gt, pred


def vislab_stdout(capsys, *args) -> str:
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RedPixelsWarning)
        assert main(["evaluate", *map(str, args)]) == 0
    return capsys.readouterr().out


# the course's own reader and arithmetic, in a fresh process as the course runs it: its
# np.empty array is only zeroed memory (red read as urban) in a process that has not yet
# freed blocks of that size, which a long test session has
SCORES = """import contextlib, importlib.util, io, json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
spec = importlib.util.spec_from_file_location("course", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
p, t = m.read_masks(sys.argv[3]), m.read_masks(sys.argv[2])
with np.errstate(invalid="ignore"), contextlib.redirect_stdout(io.StringIO()):
    tp = [np.sum((p == i) * (t == i)) for i in range(6)]
    ious = [float(tp[i] / (np.sum(p == i) + np.sum(t == i) - tp[i])) for i in range(6)]
    mean = float(m.mean_iou_score(p, t))
print(json.dumps([ious, mean]))
"""


def assert_same_scores(gt, pred):
    """The six IoUs and the mean of the course's code against vislab's, to the bit."""
    script = [
        sys.executable,
        "-c",
        SCORES,
        str(COURSE / "mean_iou_evaluate.py"),
        str(gt),
        str(pred),
    ]
    done = subprocess.run(script, capture_output=True, text=True, check=True)
    expected, mean = json.loads(done.stdout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RedPixelsWarning)
        ours = evaluate_masks(gt, pred)
    got = [np.nan if v is None else v for v in ours["iou"].values()]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert ours["miou"] == mean or (np.isnan(mean) and np.isnan(ours["miou"]))


def test_evaluate_equals_the_course_on_generated_masks(tmp_path, capsys):
    gt, pred = write_mask_folders(tmp_path, np.random.default_rng(0))
    printed = course("mean_iou_evaluate.py", "-g", gt, "-p", pred, cwd=tmp_path)
    assert printed.startswith("class #0 : ") and "\nmean_iou: 0." in printed
    assert vislab_stdout(capsys, "--pred", pred, "--gt", gt) == printed
    assert_same_scores(gt, pred)


def test_a_class_absent_from_both_prints_nan_as_the_course_does(tmp_path, capsys):
    gt, pred = write_mask_folders(tmp_path, np.random.default_rng(1), n=17)
    for folder in (gt, pred):  # no white (barren) anywhere: 0/0
        for f in folder.glob("*.png"):
            rgb = np.asarray(Image.open(f))[..., :3].copy()
            rgb[(rgb >= 128).all(-1)] = 0
            Image.fromarray(rgb).save(f)
    printed = course("mean_iou_evaluate.py", "-g", gt, "-p", pred, cwd=tmp_path)
    assert "class #5 : nan" in printed and "mean_iou: nan" in printed
    assert vislab_stdout(capsys, "--pred", pred, "--gt", gt) == printed
    assert_same_scores(gt, pred)
    verbose = vislab_stdout(capsys, "--pred", pred, "--gt", gt, "--verbose")
    assert verbose.startswith(printed) and "mean over the 5 present classes" in verbose


def test_red_in_truth_and_predictions_is_counted_in_one_warning(tmp_path, capsys):
    gt, pred = write_mask_folders(tmp_path, np.random.default_rng(2), n=1)
    for f, rows in ((gt / "0000_mask.png", 3), (pred / "0000.png", 5)):
        rgb = np.zeros((512, 512, 3), dtype=np.uint8)  # unknown, but for some red pixels
        rgb[:rows, :2] = (255, 0, 0)
        Image.fromarray(rgb).save(f)
    with pytest.warns(RedPixelsWarning) as caught:
        assert main(["evaluate", "--pred", str(pred), "--gt", str(gt)]) == 0
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "2 mask(s) hold 16 pure red" in message and "read as urban" in message
    assert "gt/0000_mask.png (6)" in message and "pred/0000.png (10)" in message
    assert "class #0 : 0.60000" in capsys.readouterr().out  # urban: 6 / (10 + 6 - 6)


@pytest.mark.integration
@pytest.mark.skipif(not (REAL_P2 / "validation").is_dir(), reason=f"no {REAL_P2}")
def test_evaluate_equals_the_course_on_real_masks(tmp_path, capsys):
    """40 real validation masks (0177 holds 7 red pixels) against predictions that are other
    tiles' masks with red squares painted in."""
    files = sorted((REAL_P2 / "validation").glob("*_mask.png"))
    files = [f for f in files if f.name != "0177_mask.png"][:39] + [files[177]]
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    for i, f in enumerate(files):
        shutil.copy(f, gt / f.name)
        guess = np.asarray(Image.open(files[(i + 1) % len(files)])).copy()
        guess[100 * (i % 4) : 100 * (i % 4) + 60, 200:260] = (255, 0, 0)
        Image.fromarray(guess).save(pred / f"{f.name[:4]}.png")
    printed = course("mean_iou_evaluate.py", "-g", gt, "-p", pred, cwd=tmp_path)
    assert vislab_stdout(capsys, "--pred", pred, "--gt", gt) == printed
    assert_same_scores(gt, pred)


def overlay_tile(tmp_path, rng, shape, name) -> tuple:
    image = rng.integers(0, 256, size=(*shape, 3)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / f"{name}_sat.jpg", quality=90)
    save_mask(blocky_rgb(rng, shape, block=6), tmp_path / f"{name}_mask.png", rgba=name == "0001")
    return tmp_path / f"{name}_sat.jpg", tmp_path / f"{name}_mask.png"


def course_overlay(sat, mask, cwd) -> np.ndarray:
    course("viz_mask.py", "--img_path", sat, "--seg_path", mask, cwd=cwd)
    return np.asarray(Image.open(cwd / "exp.png"))


@pytest.mark.parametrize("seed", range(4))
def test_overlay_equals_the_course_on_generated_tiles(tmp_path, seed):
    """Blocks of every colour (red too), 1-pixel lines and dots, regions on every border."""
    rng = np.random.default_rng(seed)
    sat, mask = overlay_tile(tmp_path, rng, (60 + seed, 72), f"{seed:04d}")
    expected = course_overlay(sat, mask, tmp_path)
    out = tmp_path / "ours.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RedPixelsWarning)
        assert main(["overlay", "--image", str(sat), "--mask", str(mask), "--out", str(out)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    full = tmp_path / "full.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RedPixelsWarning)
        main(
            ["overlay", "--image", str(sat), "--mask", str(mask), "--out", str(full)]
            + ["--full-band"]
        )
    assert not np.array_equal(np.asarray(Image.open(full)), expected)  # the intended band differs


@pytest.mark.integration
@pytest.mark.skipif(not (REAL_P2 / "validation").is_dir(), reason=f"no {REAL_P2}")
def test_overlay_equals_the_course_on_real_tiles(tmp_path):
    tiles = ["0013", "0177"]  # 0177 holds red pixels
    folder = tmp_path / "tiles"
    folder.mkdir()
    for t in tiles:
        for suffix in ("_sat.jpg", "_mask.png"):
            shutil.copy(REAL_P2 / "validation" / f"{t}{suffix}", folder)
    with pytest.warns(RedPixelsWarning, match=r"1 mask\(s\) hold 7 pure red.*0177_mask.png"):
        args = ["--image", str(folder), "--mask", str(folder), "--out", str(tmp_path / "o")]
        assert main(["overlay", *args]) == 0
    for t in tiles:
        expected = course_overlay(folder / f"{t}_sat.jpg", folder / f"{t}_mask.png", tmp_path)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / f"{t}.png")), expected)


def test_the_course_colours_are_vislabs():
    m = course_module("viz_mask.py")
    assert [m.cls_color[c] for c in range(7)] == COLORS.tolist()
