"""optim.class_weights: a weight per class, or "balanced" worked out from the train masks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, seg_meta, seg_train_args

from vislab.cli import main
from vislab.config import load_config
from vislab.course.landcover import LANDCOVER
from vislab.data.tiles import balanced_weights, load_tiles, pixel_counts
from vislab.train.segmentation import SegmentationTask


def test_balanced_weights_are_inverse_sqrt_share_with_mean_1_over_scored_classes():
    # 64 pixels: urban 1/2, agriculture, rangeland, water and unknown 1/8 each; forest and
    # barren absent
    mask = np.repeat(np.array([0, 1, 2, 4, 6], np.uint8), [32, 8, 8, 8, 8]).reshape(8, 8)
    w = balanced_weights(pixel_counts(mask[None], 7), LANDCOVER.scored)
    scored = [w[0], w[1], w[2], w[4]]
    assert np.mean(scored) == pytest.approx(1.0, abs=1e-4)
    assert w[1] == w[2] == w[4] == pytest.approx(2 * w[0], abs=1e-4)  # a quarter of the share
    assert (w[3], w[5], w[6]) == (1.0, 1.0, 1.0)  # absent, absent, unknown (not scored)


def test_the_loss_weighs_classes_by_the_runs_weights():
    cfg = load_config(REPO / "configs" / "p2_cpu.yaml")
    weights = [1.0, 0.25, 2.0, 1.0, 4.0, 1.0, 1.0]
    task = SegmentationTask.from_config(cfg, seg_meta(cfg, weights))
    logits = torch.randn(2, 7, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 7, (2, 4, 4), generator=torch.Generator().manual_seed(1))
    expected = F.cross_entropy(logits, y, weight=torch.tensor(weights))
    assert task._loss(logits, y).item() == pytest.approx(expected.item())
    assert expected.item() != pytest.approx(F.cross_entropy(logits, y).item())


def test_balanced_weights_are_computed_printed_and_kept_with_the_run(p2_tiny, tmp_path, capsys):
    out = tmp_path / "run"
    args = seg_train_args(p2_tiny, out, 1, "--set", "optim.class_weights=balanced")
    assert main(args) == 0
    counts = pixel_counts(load_tiles(p2_tiny / "train", size=32).masks, 7)
    expected = balanced_weights(counts, LANDCOVER.scored)
    meta = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["vislab"]
    assert meta["class_weights"] == expected
    assert expected != [1.0] * 7
    printed = capsys.readouterr().out
    assert "class weights (balanced, from the train masks): urban " in printed
    assert f"agriculture {expected[1]:g}" in printed


def test_pixel_counts_over_chunks_equal_one_bincount(monkeypatch):
    import vislab.data.tiles as tiles

    monkeypatch.setattr(tiles, "CHUNK_BYTES", 2 * 6 * 5)  # chunks of two masks
    masks = np.random.default_rng(0).integers(0, 9, (7, 6, 5), dtype=np.uint8)  # 8: ignored
    expected = np.bincount(masks.reshape(-1), minlength=9)[:7]
    assert pixel_counts(masks, 7).tolist() == expected.tolist()
