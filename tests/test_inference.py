"""Test-time flips: predictions are averaged with the mirrored input's, mirrored back."""

import torch
import torch.nn as nn

from vislab.inference import classify, segment_logits


class Ramp(nn.Module):
    """A 'segmenter' whose class-0 logit grows from left to right, whatever the input."""

    def forward(self, x):
        b, _, h, w = x.shape
        ramp = torch.linspace(-1, 1, w).expand(b, 1, h, w)
        return {"out": torch.cat([ramp, torch.zeros_like(ramp)], 1)}


def test_segmentation_tta_mirrors_the_flipped_logits_back():
    x = torch.rand(2, 3, 8, 16)
    plain = segment_logits(Ramp(), x, None)
    assert (plain.argmax(1)[..., :8] == 1).all() and (plain.argmax(1)[..., 8:] == 0).all()
    tta = segment_logits(Ramp(), x, None, tta=True)
    # the ramp and its mirror average to zero everywhere: the flip was undone before averaging
    assert torch.allclose(tta[:, 0], torch.zeros(2, 8, 16), atol=1e-6)


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
    assert classify(LeftBright(), images, mean, std).tolist() == [0]
    assert classify(LeftBright(), images, mean, std, tta=True).tolist() == [1]
