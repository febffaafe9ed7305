"""Test-time augmentation: predictions of flipped (and, for tiles, turned) views, undone and
averaged; and the one line a failed allocation ends in."""

import pytest
import torch
import torch.nn as nn

from vislab.infer.forward import class_probabilities, segment_logits


class Ramp(nn.Module):
    """A 'segmenter' whose class-0 logit grows from left to right, whatever the input."""

    def forward(self, x):
        b, _, h, w = x.shape
        ramp = torch.linspace(-1, 1, w).expand(b, 1, h, w)
        return {"out": torch.cat([ramp, torch.zeros_like(ramp)], 1)}


def test_segmentation_tta_turns_each_view_back_before_averaging():
    x = torch.rand(2, 3, 16, 16)
    plain = segment_logits(Ramp(), x, None)
    assert (plain.argmax(1)[..., :8] == 1).all() and (plain.argmax(1)[..., 8:] == 0).all()
    tta = segment_logits(Ramp(), x, None, tta=True)
    # the ramp in all eight orientations averages to zero everywhere
    assert torch.allclose(tta[:, 0], torch.zeros(2, 16, 16), atol=1e-6)


def test_segmentation_tta_leaves_a_model_that_sees_every_view_alike_unchanged():
    # a per-pixel model answers each turned view with the turned answer: once the views are
    # turned back, their average is the plain prediction, also on a tile that is not square
    model = PerPixel()
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    plain = segment_logits(model, x, None)
    assert torch.allclose(segment_logits(model, x, None, tta=True), plain, atol=1e-6)


class PerPixel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 7, 1)

    def forward(self, x):
        return {"out": self.conv(x)}


class LeftBright(nn.Module):
    """A 'classifier': class 0 if the left half is brighter, class 1 otherwise, confidently
    so in proportion to the difference."""

    def forward(self, x):
        d = x[..., : x.shape[-1] // 2].mean((1, 2, 3)) - x[..., x.shape[-1] // 2 :].mean((1, 2, 3))
        return torch.stack([4 * d, -4 * d + 0.1], 1)


def test_classification_tta_averages_the_probabilities_of_both_views():
    images = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    images[..., :2] = 200  # bright left: class 0 alone, a tie broken by the 0.1 bias with tta
    mean, std = [0.0] * 3, [1.0] * 3
    assert class_probabilities(LeftBright(), images, mean, std).argmax(1).tolist() == [0]
    probs = class_probabilities(LeftBright(), images, mean, std, tta=True)
    assert probs.argmax(1).tolist() == [1]


@pytest.mark.parametrize("error", [OSError, RuntimeError])
def test_errno_12s_text_is_named_out_of_memory(error):
    """ENOMEM ("Cannot allocate memory"), as an mmap or a worker's fork reports it."""
    from vislab.errors import VislabError
    from vislab.infer.forward import memory_named

    with pytest.raises(VislabError) as e, memory_named("predicting", "give a smaller batch"):
        raise error(12, "Cannot allocate memory")
    assert str(e.value) == "out of memory predicting; give a smaller batch"
