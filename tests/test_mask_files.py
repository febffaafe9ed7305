"""Mask files that every mask reader (the course's land-cover code and a declared data set's)
must refuse before it decodes them: a FIFO, a header that claims more pixels than vislab
decodes, more than 8 bits per channel; and the same files in `vislab evaluate`'s folders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from odd_files import fifos, raw_png

from vislab.cli import main
from vislab.course.landcover import LANDCOVER, write_mask
from vislab.data.spec import DatasetSpec
from vislab.errors import VislabError

SPECS = [LANDCOVER, DatasetSpec(["a", "b"])]  # the course's reader (libspng) and Pillow's


@pytest.mark.parametrize("spec", SPECS, ids=["landcover", "declared"])
def test_a_fifo_mask_is_named_not_opened(tmp_path, spec):
    with fifos(tmp_path / "0001_mask.png") as (pipe,), pytest.raises(VislabError) as e:
        spec.read_mask(pipe)
    assert (
        str(e.value)
        == f"{pipe} is a FIFO (named pipe), not a mask: vislab reads regular files only"
    )


@pytest.mark.parametrize("spec", SPECS, ids=["landcover", "declared"])
def test_a_mask_header_of_more_pixels_than_vislab_decodes_is_refused_undecoded(
    tmp_path, monkeypatch, spec
):
    import pyspng

    from vislab.infer.meta import max_pixels

    decoded = []
    monkeypatch.setattr(pyspng, "load", lambda data, *a, **k: decoded.append(len(data)))
    bomb = raw_png(tmp_path / "bomb.png", 25_000, 25_000)
    with pytest.raises(VislabError) as e:
        spec.read_mask(bomb)
    assert str(e.value).startswith(
        f"{bomb}: its header claims 25000x25000 pixels, more than the {max_pixels():,} vislab "
        "decodes"
    )
    assert decoded == []  # refused before the decoder saw it


@pytest.mark.parametrize(
    ("colour", "words"),
    [(2, "a 16-bit RGB PNG"), (4, "a 16-bit grey with alpha PNG"), (6, "a 16-bit RGBA PNG")],
)
def test_the_course_refuses_a_16_bit_colour_mask_naming_its_bit_depth(tmp_path, colour, words):
    """Its reader (libspng) decodes them as 16-bit values; Pillow names their modes RGB and
    RGBA: the header's bit depth says what they are, in a message that does not contradict
    itself."""
    deep = raw_png(tmp_path / "deep.png", 8, 8, bits=16, colour=colour)
    with pytest.raises(VislabError) as e:
        LANDCOVER.read_mask(deep)
    assert str(e.value) == (
        f"{deep}: mask must be an 8-bit RGB (or RGBA) image, got {words} (bit depth 16 in its "
        "header)"
    )


@pytest.mark.parametrize("colour", [2, 6])
def test_a_16_bit_rgb_mask_reads_its_palette_colours_scaled_by_257(tmp_path, colour):
    """Pillow reads each value's high byte: c * 257 is c again, colour for colour."""
    from test_images import png16

    spec = SPECS[1]  # classes a [0, 0, 0], b [128, 0, 0]; ignored [224, 224, 192]
    index = np.array([[0, 1, 255], [1, 255, 0]], np.uint8)
    rgb = spec.to_rgb(index).astype(np.int64) * 257
    if colour == 6:
        rgb = np.concatenate([rgb, np.full(index.shape + (1,), 65535)], axis=-1)
    path = png16(tmp_path / "deep.png", rgb, colour)
    assert np.array_equal(spec.read_mask(path)[0], index)
    with pytest.raises(VislabError) as e:
        DatasetSpec(["a", "b"], mask_format="index").read_mask(path)
    assert str(e.value).startswith(
        f"{path}: a 16-bit {'RGBA' if colour == 6 else 'RGB'} PNG (bit depth 16 in its header), "
        "but data.mask_format is index"
    )


def test_a_16_bit_grey_with_alpha_mask_is_refused_as_neither_index_nor_rgb(tmp_path):
    """Pillow names it RGBA (grey replicated): its header says it is grey with alpha."""
    deep = raw_png(tmp_path / "deep.png", 8, 8, bits=16, colour=4)
    with pytest.raises(VislabError) as e:
        SPECS[1].read_mask(deep)
    assert str(e.value) == (
        f"{deep}: a mask is an 8-bit index (L or P) or an RGB(A) of 8 or 16 bits per channel; "
        "this is a 16-bit grey with alpha PNG (bit depth 16 in its header)"
    )


def _folders(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for folder in (gt, pred):
        folder.mkdir()
        for i in range(3):
            write_mask(np.full((8, 8), i, np.uint8), folder / f"000{i}_mask.png")
    return gt, pred


def _error(capsys, argv) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("side", ["pred", "gt"])
def test_a_fifo_in_a_mask_folder_is_named_not_taken_for_a_missing_mask(tmp_path, capsys, side):
    gt, pred = _folders(tmp_path)
    folder = pred if side == "pred" else gt
    (folder / "0001_mask.png").unlink()
    with fifos(folder / "0001_mask.png") as (pipe,):
        err = _error(capsys, ["evaluate", "--pred", pred, "--gt", gt])
    assert f"{pipe} is a FIFO (named pipe), not a mask" in err, err


def test_a_fifo_as_the_ground_truth_of_mask_folders_is_named(tmp_path, capsys):
    gt, pred = _folders(tmp_path)
    shutil.rmtree(gt)
    with fifos(gt):
        err = _error(capsys, ["evaluate", "--pred", pred, "--gt", gt])
    assert err.endswith(f"ground-truth masks; {gt} is a FIFO (named pipe)"), err


def test_a_mask_bomb_among_the_predictions_is_one_line(tmp_path, capsys):
    gt, pred = _folders(tmp_path)
    raw_png(pred / "0001_mask.png", 25_000, 25_000)
    err = _error(capsys, ["evaluate", "--pred", pred, "--gt", gt])
    assert f"{pred / '0001_mask.png'}: its header claims 25000x25000 pixels" in err, err
