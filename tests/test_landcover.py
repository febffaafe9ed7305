"""Colour codec and the course mIoU against a deliberately simple implementation."""

import numpy as np
import pytest
from conftest import REAL_P2
from PIL import Image

from vislab.course.landcover import CLASSES, COLORS, index_to_rgb, read_mask, rgb_to_index
from vislab.metrics.miou import confusion, format_scores, scores


def course_miou(pred: np.ndarray, labels: np.ndarray) -> tuple[float, list[float]]:
    """The course's formula, written plainly: per class i in 0..5,
    tp / (#pred==i + #truth==i - tp), summed / 6 one class at a time."""
    ious, mean = [], 0.0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) & (labels == i))
        ious.append(tp / (tp_fp + tp_fn - tp))
        mean += ious[-1] / 6
    return mean, ious


def slow_decode(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel decode, as the course's reader does it (red keeps the 0 of urban)."""
    out = np.empty(rgb.shape[:2], dtype=np.uint8)
    table = {3: 0, 6: 1, 5: 2, 2: 3, 1: 4, 7: 5, 0: 6, 4: 0}
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


def test_thresholds_at_128_and_red_is_urban():
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
    s = scores(confusion(truth, pred, 7))
    expected, per_class = course_miou(pred, truth)
    assert s["miou"] == expected  # the course's order of summing: the same bits
    assert list(s["iou"].values()) == per_class
    assert s["pixel_acc"] == pytest.approx(float((truth == pred).mean()))


def test_unknown_truth_predicted_as_a_class_is_a_false_positive():
    truth = np.array([6, 6, 0, 0])
    pred = np.array([0, 6, 0, 0])
    s = scores(confusion(truth, pred, 7))
    assert s["iou"]["urban"] == pytest.approx(2 / 3)  # TP 2, FP 1 (the unknown pixel)


def test_a_class_absent_from_both_makes_the_course_mean_nan_and_is_left_out_of_the_other():
    truth = np.array([0, 1, 1, 2, 3, 4])
    pred = np.array([0, 1, 1, 2, 3, 4])
    s = scores(confusion(truth, pred, 7))
    assert s["iou"]["barren"] is None and s["absent_classes"] == ["barren"]
    assert np.isnan(s["miou"]) and s["miou_present"] == 1.0
    assert format_scores(s).split("\n")[5:] == ["class #5 : nan", "", "mean_iou: nan", ""]


@pytest.mark.integration
@pytest.mark.skipif(not (REAL_P2 / "validation").is_dir(), reason=f"no {REAL_P2}")
def test_miou_on_the_real_validation_masks():
    """Score the real masks against a shifted copy of themselves, both ways."""
    files = sorted((REAL_P2 / "validation").glob("*_mask.png"))
    truth = np.stack([read_mask(f)[0] for f in files])
    pred = np.roll(truth, 1, axis=0)  # each mask scored against its neighbour
    s = scores(confusion(truth, pred, 7))
    expected, per_class = course_miou(pred, truth)
    assert s["miou"] == expected and list(s["iou"].values()) == per_class
    red_tile = REAL_P2 / "validation" / "0177_mask.png"  # holds 7 pure red pixels
    index, red = read_mask(red_tile)
    assert red == 7 and np.array_equal(index, slow_decode(np.asarray(Image.open(red_tile))))


def test_evaluate_over_worker_processes_equals_the_course_formula(tmp_path):
    """Enough masks to split over processes: the pooled scores, the red count of every file
    and a bad file's error come back as one process would give them."""
    from vislab.errors import VislabError
    from vislab.metrics.mask_scores import evaluate_masks

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 7, (70, 16, 16), dtype=np.uint8)
    pred = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(0, 7, truth.shape))
    (tmp_path / "gt").mkdir(), (tmp_path / "pred").mkdir()
    for i, (t, p) in enumerate(zip(truth, pred, strict=True)):
        rgb = index_to_rgb(p)
        if i % 9 == 0:
            rgb[0, 0] = (255, 0, 0)  # red: read as urban, counted per file
            pred[i, 0, 0] = 0
        Image.fromarray(index_to_rgb(t)).save(tmp_path / "gt" / f"{i:04d}_mask.png")
        Image.fromarray(rgb).save(tmp_path / "pred" / f"{i:04d}.png")
    with pytest.warns(UserWarning, match=r"8 mask\(s\) hold 8 pure red") as caught:
        result = evaluate_masks(tmp_path / "gt", tmp_path / "pred")
    assert "pred/0063.png (1)" in str(caught[0].message)
    expected, per_class = course_miou(pred, truth)
    assert result["miou"] == expected and list(result["iou"].values()) == per_class
    (tmp_path / "pred" / "0050.png").write_bytes(b"not a png")
    with pytest.raises(VislabError, match="cannot read mask .*0050.png"):
        evaluate_masks(tmp_path / "gt", tmp_path / "pred")
