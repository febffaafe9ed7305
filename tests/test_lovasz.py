"""optim.lovasz_weight: the Lovasz-softmax surrogate of 1 - mIoU added to the cross-entropy."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, seg_meta, seg_train_args

from vislab.cli import main
from vislab.config import load_config
from vislab.errors import VislabError
from vislab.metrics.miou import scores
from vislab.train.lovasz import lovasz_softmax
from vislab.train.segmentation import SegmentationTask


def _labels(seed: int, shape=(2, 16, 16)) -> torch.Tensor:
    return torch.randint(0, 7, shape, generator=torch.Generator().manual_seed(seed))


def test_on_hard_predictions_it_is_one_minus_the_miou_without_unknown_pixels():
    y, pred = _labels(0), _labels(1)
    # the course's pooled mIoU over classes 0..5 (all in y and pred), but with the pixels of
    # unknown truth left out of the matrix: the course counts them as false positives
    cm = np.zeros((7, 7), np.int64)
    np.add.at(cm, (y.flatten().numpy(), pred.flatten().numpy()), 1)
    cm[6, :] = 0
    expected = 1 - scores(cm)["miou"]
    probs = F.one_hot(pred, 7).permute(0, 3, 1, 2).float()
    assert lovasz_softmax(probs, y, 6).item() == pytest.approx(expected, abs=1e-6)
    assert expected > 0.5  # random labels: far from a perfect score


def test_perfect_probabilities_cost_nothing_and_unknown_pixels_are_ignored():
    y = _labels(2)
    probs = F.one_hot(y, 7).permute(0, 3, 1, 2).float()
    assert lovasz_softmax(probs, y, 6).item() == 0.0
    wrong_on_unknown = probs.clone()
    unknown = (y == 6).unsqueeze(1).expand_as(probs)
    wrong_on_unknown[unknown] = 1 / 7
    assert lovasz_softmax(wrong_on_unknown, y, 6).item() == 0.0


def test_gradient_descent_on_it_lowers_it():
    y = _labels(3)
    logits = torch.randn(2, 7, 16, 16, generator=torch.Generator().manual_seed(4))
    logits.requires_grad_()
    losses = []
    for _ in range(5):  # the loss is a mean over 512 pixels: each pixel's gradient is small
        loss = lovasz_softmax(logits.softmax(1), y, 6)
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            logits -= 1000 * logits.grad
            logits.grad = None
    assert losses[-1] < losses[0] - 0.1


def test_a_batch_of_only_unknown_pixels_gives_zero_with_a_gradient():
    logits = torch.randn(1, 7, 4, 4, requires_grad=True)
    loss = lovasz_softmax(logits.softmax(1), torch.full((1, 4, 4), 6), 6)
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_the_task_scores_every_other_pixel_of_rows_and_columns():
    cfg = load_config(REPO / "configs" / "p2_cpu.yaml", ["optim.lovasz_weight=1"])
    task = SegmentationTask.from_config(cfg, seg_meta(cfg))
    # right on even columns, wrong on odd ones: the quarter of the pixels it sees are all right
    y = torch.zeros(1, 8, 8, dtype=torch.long)
    y[:, :, 1::2] = 1
    logits = torch.full((1, 7, 8, 8), -20.0)
    logits[:, 0] = 20.0
    assert task._lovasz(logits, y).item() == pytest.approx(0.0, abs=1e-6)
    assert task._lovasz(logits, 1 - y).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("weight", ["-1", ".nan"])
def test_a_negative_or_nan_weight_is_refused(weight):
    with pytest.raises(VislabError, match=re.escape("optim.lovasz_weight:")):
        load_config(REPO / "configs" / "p2_cpu.yaml", [f"optim.lovasz_weight={weight}"])


def test_training_with_the_term_logs_it_next_to_the_cross_entropy(p2_tiny, tmp_path):
    out = tmp_path / "run"
    assert main(seg_train_args(p2_tiny, out, 2, "--set", "optim.lovasz_weight=1.0")) == 0
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    cols = header.split(",")
    assert {"train_loss", "train_lovasz", "val_loss", "val_miou"} <= set(cols)
    lovasz = [float(r.split(",")[cols.index("train_lovasz")]) for r in rows]
    assert len(lovasz) == 2 and all(0 < v <= 1 for v in lovasz)
