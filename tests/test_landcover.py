"""Colour codec and the course mIoU against a deliberately simple implementation."""

import numpy as np
import pytest
from conftest import REAL_P2
from PIL import Image

from vislab.data.landcover import CLASSES, COLORS, index_to_rgb, read_mask, rgb_to_index
from vislab.miou import confusion, scores


def course_miou(pred: np.ndarray, labels: np.ndarray) -> tuple[float, list[float]]:
    """The course's formula, written plainly: per class i in 0..5,
    tp / (#pred==i + #truth==i - tp), averaged over the six."""
    ious = []
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) & (labels == i))
        ious.append(tp / (tp_fp + tp_fn - tp))
    return float(np.mean(ious)), ious


def slow_decode(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel decode, as the course's reader does it (red -> unknown here)."""
    out = np.empty(rgb.shape[:2], dtype=np.uint8)
    table = {3: 0, 6: 1, 5: 2, 2: 3, 1: 4, 7: 5, 0: 6, 4: 6}
    for y in range(rgb.shape[0]):
        for x in range(rgb.shape[1]):
            r, g, b = (int(v >= 128) for v in rgb[y, x])
            out[y, x] = table[4 * r + 2 * g + b]
    return out


def test_codec_round_trip_and_colour_names():
    index = np.random.default_rng(0).integers(0, 7, size=(20, 30)).astype(np.uint8)
    back, red = rgb_to_index(index_to_rgb(index))
    assert np.array_equal(back, index) and red == 0
    assert COLORS[CLASSES.index("agriculture")].tolist() == [255, 255, 0]
    assert COLORS[CLASSES.index("urban")].tolist() == [0, 255, 255]


def test_thresholds_at_128_and_red_is_unknown():
    rgb = np.random.default_rng(1).integers(0, 256, size=(16, 16, 3)).astype(np.uint8)
    index, red = rgb_to_index(rgb)
    assert np.array_equal(index, slow_decode(rgb))
    code = (rgb[..., 0] >= 128) * 4 + (rgb[..., 1] >= 128) * 2 + (rgb[..., 2] >= 128)
    assert red == int((code == 4).sum()) > 0


@pytest.mark.parametrize("seed", range(5))
def test_miou_matches_the_course_formula_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 7, size=(3, 40, 40))
    pred = rng.integers(0, 7, size=(3, 40, 40))
    s = scores(confusion(truth, pred))
    expected, per_class = course_miou(pred, truth)
    assert s["miou"] == pytest.approx(expected, abs=1e-12)
    assert list(s["iou"].values()) == pytest.approx(per_class, abs=1e-12)
    assert s["pixel_acc"] == pytest.approx(float((truth == pred).mean()))


def test_unknown_truth_predicted_as_a_class_is_a_false_positive():
    truth = np.array([6, 6, 0, 0])
    pred = np.array([0, 6, 0, 0])
    s = scores(confusion(truth, pred))
    assert s["iou"]["urban"] == pytest.approx(2 / 3)  # TP 2, FP 1 (the unknown pixel)


def test_a_class_absent_from_both_is_named_and_left_out_of_the_mean():
    truth = np.array([0, 1, 1, 2, 3, 4])
    pred = np.array([0, 1, 1, 2, 3, 4])
    s = scores(confusion(truth, pred))
    assert s["iou"]["barren"] is None and s["absent_classes"] == ["barren"]
    assert s["miou"] == 1.0 and s["mean_over"] == "5 of 6 classes"


@pytest.mark.integration
@pytest.mark.skipif(not (REAL_P2 / "validation").is_dir(), reason=f"no {REAL_P2}")
def test_miou_on_the_real_validation_masks():
    """Score the real masks against a shifted copy of themselves, both ways."""
    files = sorted((REAL_P2 / "validation").glob("*_mask.png"))
    truth = np.stack([read_mask(f)[0] for f in files])
    pred = np.roll(truth, 1, axis=0)  # each mask scored against its neighbour
    s = scores(confusion(truth, pred))
    expected, per_class = course_miou(pred, truth)
    assert s["miou"] == pytest.approx(expected, abs=1e-12)
    assert list(s["iou"].values()) == pytest.approx(per_class, abs=1e-12)
    red_tile = REAL_P2 / "validation" / "0177_mask.png"  # holds 7 pure red pixels
    index, red = read_mask(red_tile)
    assert red == 7 and np.array_equal(index, slow_decode(np.asarray(Image.open(red_tile))))
