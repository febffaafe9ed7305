import torch
import torch.nn.functional as F

from vislab.data.batches import (
    EpochSampler,
    TensorImageDataset,
    channel_stats,
    normalize,
    random_crop_flip,
)


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


def test_dataset_fetches_a_batch_in_one_slice_and_normalize_scales():
    images = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).view(4, 3, 2, 2)
    ds = TensorImageDataset(images, torch.tensor([0, 1, 2, 3]))
    x, y = ds.__getitems__([2, 0])
    assert torch.equal(x, images[[2, 0]]) and y.tolist() == [2, 0]
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


def test_channel_stats_over_chunks_equal_the_whole_set_in_float64():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (130, 3, 5, 7), dtype=torch.uint8, generator=g)  # 3 chunks
    images[:, 1] = 255  # a constant channel: std exactly 0, not a negative variance's NaN
    mean, std = (torch.tensor(v, dtype=torch.float64) for v in channel_stats(images))
    x = images.double() / 255
    assert torch.allclose(mean, x.mean(dim=(0, 2, 3)), atol=1e-12)
    assert torch.allclose(std, x.std(dim=(0, 2, 3)), atol=1e-12)
