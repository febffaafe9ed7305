import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vislab.config_keys import CHOICES
from vislab.data.augment import (
    AUTO_AUGMENT,
    auto_augment,
    mix_batch,
    random_crop_flip,
    random_erasing,
)
from vislab.data.batches import EpochSampler, TensorImageDataset, channel_stats, normalize


def test_each_output_is_a_crop_of_the_padded_image_possibly_flipped():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    g = torch.Generator().manual_seed(1)
    out = random_crop_flip(x, padding=2, hflip=True, generator=g)
    assert out.shape == x.shape
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    offsets, flips = set(), 0
    for i in range(16):
        found = [
            (oy, ox, flip)
            for oy in range(5)
            for ox in range(5)
            for flip in (False, True)
            if torch.equal(
                out[i],
                padded[i, :, oy : oy + 8, ox : ox + 8].flip(2)
                if flip
                else padded[i, :, oy : oy + 8, ox : ox + 8],
            )
        ]
        assert found, f"image {i} is not a crop of its padded input"
        offsets.add(found[0][:2])
        flips += found[0][2]
    assert len(offsets) > 3 and 0 < flips < 16  # offsets and flips vary across the batch


def test_same_generator_seed_gives_the_same_batch():
    x = torch.rand(8, 3, 8, 8)
    a = random_crop_flip(x, 4, True, torch.Generator().manual_seed(3))
    b = random_crop_flip(x, 4, True, torch.Generator().manual_seed(3))
    c = random_crop_flip(x, 4, True, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_no_augmentation_is_identity():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(random_crop_flip(x, 0, False, torch.Generator()), x)


def test_epoch_sampler_is_a_permutation_fixed_by_seed_and_epoch():
    s = EpochSampler(100, seed=5)
    s.set_epoch(3)
    first = list(s)
    assert sorted(first) == list(range(100))
    s.set_epoch(4)
    assert list(s) != first
    again = EpochSampler(100, seed=5)
    again.set_epoch(3)
    assert list(again) == first


def test_dataset_fetches_a_batch_in_one_slice_channels_first_and_normalize_scales():
    images = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).view(4, 3, 2, 2)  # N, C, H, W
    ds = TensorImageDataset(images.permute(0, 2, 3, 1).numpy(), np.arange(4))  # as decoded
    x, y = ds.__getitems__([2, 0])
    assert torch.equal(x, images[[2, 0]]) and x.is_contiguous() and y.tolist() == [2, 0]
    assert torch.equal(ds[1][0], images[1]) and ds.size == (2, 2)
    z = normalize(x, torch.tensor([0.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 2.0]))
    assert torch.allclose(z[:, 2], x[:, 2].float() / 255 / 2)


def test_epoch_sampler_deals_the_one_process_order_to_the_ranks():
    one = list(EpochSampler(103, seed=5))
    ranks = [EpochSampler(103, seed=5, rank=r, world=4) for r in range(4)]
    shares = [list(s) for s in ranks]
    assert {len(s) for s in ranks} == {25} and [len(x) for x in shares] == [25] * 4
    # batch k of every rank (4 per rank) together = batch k of one process (16)
    for k in range(6):
        dealt = sorted(i for x in shares for i in x[4 * k : 4 * k + 4])
        assert dealt == sorted(one[16 * k : 16 * k + 16])
    assert len(set().union(*shares)) == 100  # no index twice; the 3 of the tail dropped


def test_channel_stats_over_chunks_equal_the_whole_set_in_float64(monkeypatch):
    import vislab.data.batches as batches

    monkeypatch.setattr(batches, "CHUNK_BYTES", 64 * 3 * 5 * 7)  # chunks of 64 images
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (130, 3, 5, 7), dtype=torch.uint8, generator=g)  # 3 chunks
    images[:, 1] = 255  # a constant channel: std exactly 0, not a negative variance's NaN
    nhwc = images.permute(0, 2, 3, 1).contiguous()  # as decoded
    mean, std = (torch.tensor(v, dtype=torch.float64) for v in channel_stats(nhwc))
    x = images.double() / 255
    assert torch.allclose(mean, x.mean(dim=(0, 2, 3)), atol=1e-12)
    assert torch.allclose(std, x.std(dim=(0, 2, 3)), atol=1e-12)


def test_mixup_is_the_weighted_sum_of_each_image_and_its_partner():
    x = torch.rand(8, 3, 6, 6)
    out, order, lam = mix_batch(x, 0.4, 0.0, torch.Generator().manual_seed(2))
    assert sorted(order.tolist()) == list(range(8)) and 0 < lam < 1
    assert torch.allclose(out, lam * x + (1 - lam) * x[order])


def test_cutmix_pastes_one_box_and_lam_is_the_share_kept():
    x = torch.arange(8.0)[:, None, None, None].expand(8, 3, 10, 10).contiguous()  # image i is i
    for seed in range(20):
        out, order, lam = mix_batch(x, 0.0, 1.0, torch.Generator().manual_seed(seed))
        for i in range(8):
            own = out[i] == i
            pasted = out[i] == order[i]
            if order[i] != i:
                assert (own | pasted).all() and torch.equal(own[0], own[1])  # all channels
                assert own[0].float().mean().item() == pytest.approx(lam)
                rows, cols = torch.nonzero(pasted[0], as_tuple=True)
                if len(rows):  # the pasted pixels fill one rectangle
                    box = pasted[0, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
                    assert box.all() and box.sum() == pasted[0].sum()


def test_mixing_is_fixed_by_the_generator_and_both_kinds_are_drawn():
    x = torch.rand(8, 3, 8, 8)
    a = mix_batch(x, 0.2, 1.0, torch.Generator().manual_seed(7))
    b = mix_batch(x, 0.2, 1.0, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    kinds = set()
    for seed in range(20):
        out, order, lam = mix_batch(x, 0.2, 1.0, torch.Generator().manual_seed(seed))
        kinds.add(torch.allclose(out, lam * x + (1 - lam) * x[order]))
    assert kinds == {True, False}  # some batches mixed whole, some cut


def test_random_erasing_zeroes_one_rectangle_of_the_drawn_size_in_about_p_of_the_images():
    x = torch.rand(400, 3, 32, 32) + 1  # no pixel is 0 before erasing
    out = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    erased = 0
    for i in range(len(x)):
        zero = out[i] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # all channels
        assert torch.equal(out[i][~zero], x[i][~zero])  # the rest is untouched
        if not zero.any():
            continue
        erased += 1
        rows, cols = zero[0].any(1).nonzero()[:, 0], zero[0].any(0).nonzero()[:, 0]
        h, w = len(rows), len(cols)
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # one block
        assert int(zero[0].sum()) == h * w  # a full rectangle
        assert 0.02 * 1024 * 0.8 <= h * w <= 1024 / 3 * 1.2  # area 2-33% (rounded sides)
        assert 0.3 / 1.5 <= h / w <= 3.3 * 1.5
    assert 160 <= erased <= 240  # p = 0.5 of 400 images
    again = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(random_erasing(x, 0.0, torch.Generator().manual_seed(0)), x)


def test_auto_augment_draws_per_image_from_the_seed_and_keeps_the_global_random_state():
    assert set(AUTO_AUGMENT) == {c for c in CHOICES["data.auto_augment"] if c is not None}
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    for policy in AUTO_AUGMENT:
        torch.manual_seed(123)
        before = torch.rand(1)
        torch.manual_seed(123)
        out = auto_augment(x, policy, torch.Generator().manual_seed(4))
        assert torch.equal(torch.rand(1), before), policy  # the global stream is untouched
        assert out.dtype == torch.uint8 and out.shape == x.shape
        again = auto_augment(x, policy, torch.Generator().manual_seed(4))
        assert torch.equal(out, again), policy
        changed = [not torch.equal(a, b) for a, b in zip(out, x, strict=True)]
        assert sum(changed) >= 8, policy  # most images are transformed
        other = auto_augment(x, policy, torch.Generator().manual_seed(5))
        assert not torch.equal(out, other), policy
    # under a mixed-precision training step's autocast the images are the fp32 ones
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = auto_augment(x, "randaugment", torch.Generator().manual_seed(4))
    assert torch.equal(mixed, auto_augment(x, "randaugment", torch.Generator().manual_seed(4)))
    # each image its own draw: the same image repeated comes out in several versions
    same = x[:1].repeat(16, 1, 1, 1)
    out = auto_augment(same, "trivialaugment", torch.Generator().manual_seed(0))
    assert len({tuple(o.flatten().tolist()) for o in out}) >= 8
