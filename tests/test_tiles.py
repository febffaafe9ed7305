import numpy as np
import pytest
import torch
from PIL import Image

from vislab.course.landcover import RedPixelsWarning, write_mask
from vislab.data.augment import random_tile_augment
from vislab.data.synthetic import write_tile_folder
from vislab.data.tiles import find_pairs, load_sat_images, load_tiles
from vislab.errors import VislabError


def test_pairs_decode_to_images_and_class_indices(tmp_path):
    write_tile_folder(tmp_path, 3, size=32)
    t = load_tiles(tmp_path)
    assert t.ids == ["0000", "0001", "0002"]
    assert t.images.shape == (3, 32, 32, 3) and t.masks.shape == (3, 32, 32)
    assert t.masks.max() <= 6


def test_downscaling_keeps_masks_as_class_indices(tmp_path):
    write_tile_folder(tmp_path, 2, size=64)
    full, small = load_tiles(tmp_path), load_tiles(tmp_path, size=32)
    assert small.images.shape == (2, 32, 32, 3)
    assert set(np.unique(small.masks)) <= set(np.unique(full.masks))  # nearest, never blended


def test_red_pixels_become_urban_with_one_counting_warning(tmp_path):
    write_tile_folder(tmp_path, 2, size=16)
    rgb = np.asarray(Image.open(tmp_path / "0001_mask.png")).copy()
    rgb[0, :3] = [255, 0, 0]
    Image.fromarray(rgb).save(tmp_path / "0001_mask.png")
    with pytest.warns(RedPixelsWarning, match=r"1 mask\(s\) hold 3 pure red.*0001_mask.png \(3\)"):
        t = load_tiles(tmp_path)
    assert (t.masks[1, 0, :3] == 0).all()  # as the course's scripts read them


def test_rgba_and_palette_masks_read_as_their_rgb(tmp_path):
    write_tile_folder(tmp_path, 2, size=16)
    rgb = np.asarray(Image.open(tmp_path / "0000_mask.png"))
    Image.fromarray(np.dstack([rgb, np.full((16, 16), 7, np.uint8)])).save(
        tmp_path / "0000_mask.png"
    )
    Image.open(tmp_path / "0001_mask.png").quantize(8).save(tmp_path / "0001_mask.png")
    rgba_palette = load_tiles(tmp_path).masks
    write_tile_folder(tmp_path, 2, size=16)
    assert np.array_equal(rgba_palette, load_tiles(tmp_path).masks)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_mask", r"0001_sat.jpg has no mask 0001_mask.png"),
        ("mask_size", r"0001_mask.png is 8x8 but its image is 16x16"),
        ("gray_mask", r"0001_mask.png: mask must be an 8-bit RGB \(or RGBA\) image, got a L \("),
        ("empty", r"no satellite tiles"),
        ("corrupt_sat", r"cannot read image .*0000_sat.jpg"),
        ("corrupt_mask", r"cannot read mask .*0000_mask.png"),
        (
            "grey_alpha_mask",
            r"0000_mask.png: mask must be an 8-bit RGB \(or RGBA\) image, got a LA \(8-bit grey w",
        ),
        (  # libspng decodes it as two 16-bit channels: the message names what the file is
            "grey16_mask",
            r"0001_mask.png: mask must be an 8-bit RGB \(or RGBA\) image, got a I;16 \(16-bit",
        ),
    ],
)
def test_bad_pairs_name_the_file(tmp_path, breakage, message):
    write_tile_folder(tmp_path, 2, size=16)
    if breakage == "no_mask":
        (tmp_path / "0001_mask.png").unlink()
    elif breakage == "mask_size":
        write_mask(np.zeros((8, 8), dtype=np.uint8), tmp_path / "0001_mask.png")
    elif breakage == "gray_mask":
        Image.new("L", (16, 16)).save(tmp_path / "0001_mask.png")
    elif breakage == "grey16_mask":
        Image.fromarray(np.zeros((16, 16), np.uint16)).save(tmp_path / "0001_mask.png")
    elif breakage == "empty":
        for p in tmp_path.iterdir():
            p.unlink()
    elif breakage == "corrupt_sat":
        (tmp_path / "0000_sat.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    elif breakage == "corrupt_mask":
        data = (tmp_path / "0000_mask.png").read_bytes()
        (tmp_path / "0000_mask.png").write_bytes(data[: len(data) // 2])
    elif breakage == "grey_alpha_mask":
        Image.new("LA", (16, 16)).save(tmp_path / "0000_mask.png")
    with pytest.raises(VislabError, match=message):
        load_tiles(tmp_path)


def test_prediction_ids_drop_the_sat_suffix(tmp_path):
    write_tile_folder(tmp_path, 2, size=16)
    Image.new("RGB", (16, 16)).save(tmp_path / "extra.jpg")
    _, ids = load_sat_images(tmp_path)
    assert ids == ["0000", "0001", "extra"]


def test_augmentation_keeps_image_and_mask_aligned():
    # the mask is a function of the image (its red channel), so any misalignment shows
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 7, (32, 24, 24))
    x = torch.stack([y.float() * 10, torch.rand(32, 24, 24), torch.rand(32, 24, 24)], 1)
    ax, ay = random_tile_augment(x, y, 16, True, True, True, g)
    assert ax.shape == (32, 3, 16, 16) and ay.shape == (32, 16, 16)
    assert torch.equal(ax[:, 0], ay.float() * 10)
    # and the transforms vary: not every sample is the top-left unflipped crop
    assert sum(not torch.equal(ay[i], y[i, :16, :16]) for i in range(32)) > 16


def test_one_naming_rule_for_tiles_any_case_hidden_files_ignored(tmp_path):
    write_tile_folder(tmp_path, 3, size=16)
    (tmp_path / "0000_sat.jpg").rename(tmp_path / "0000_SAT.JPG")
    (tmp_path / "0001_sat.jpg").rename(tmp_path / "0001_sat.jpeg")
    (tmp_path / "0001_mask.png").rename(tmp_path / "0001_MASK.PNG")
    (tmp_path / "._0002_sat.jpg").write_bytes(b"macOS resource fork, not an image")
    tiles = load_tiles(tmp_path)
    assert tiles.ids == ["0000", "0001", "0002"] and tiles.masks.shape == (3, 16, 16)
    files, ids = load_sat_images(tmp_path)  # prediction reads the same tiles
    assert ids == tiles.ids and [f.name for f in files][:2] == ["0000_SAT.JPG", "0001_sat.jpeg"]


def test_two_files_of_one_tile_are_refused_naming_both(tmp_path):
    write_tile_folder(tmp_path, 2, size=16)
    Image.new("RGB", (16, 16)).save(tmp_path / "0001.jpg")
    for load in (load_tiles, load_sat_images):
        with pytest.raises(VislabError, match=r"0001.jpg and 0001_sat.jpg are both tile 0001"):
            load(tmp_path)


def test_prediction_takes_any_folder_of_images_in_every_suffix(tmp_path):
    for name in ("a.png", "b.jpg", "c.JPEG", "d.tif", "e.tiff"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    files, ids = load_sat_images(tmp_path)
    assert ids == ["a", "b", "c", "d", "e"]
    assert [f.name for f in files] == ["a.png", "b.jpg", "c.JPEG", "d.tif", "e.tiff"]


def test_a_folder_holding_images_is_read_from_images(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "cover.jpg")  # beside images/: not a tile
    files, ids = load_sat_images(tmp_path)
    assert ids == ["x"] and files == [tmp_path / "images" / "x.png"]


def test_in_the_course_layout_a_mask_is_never_a_tile(tmp_path):
    write_tile_folder(tmp_path, 2, size=16)
    (tmp_path / "0001_sat.jpg").rename(tmp_path / "0001_sat.png")
    files, ids = load_sat_images(tmp_path)
    assert ids == ["0000", "0001"]
    assert [f.name for f in files] == ["0000_sat.jpg", "0001_sat.png"]
    assert load_tiles(tmp_path).ids == ["0000", "0001"]


def _images_and_masks(root, stems, mask_names):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem in stems:
        Image.new("RGB", (8, 8)).save(root / "images" / f"{stem}.png")
    for name in mask_names:
        Image.new("L", (8, 8)).save(root / "masks" / name)


def test_images_and_masks_pair_by_stem(tmp_path):
    _images_and_masks(tmp_path, ["a", "b_sat", "c"], ["a.png", "b_mask.png", "c.tif"])
    assert {i: (p.name, m.name) for i, (p, m) in find_pairs(tmp_path).items()} == {
        "a": ("a.png", "a.png"),
        "b": ("b_sat.png", "b_mask.png"),
        "c": ("c.png", "c.tif"),
    }


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (["a.png"], r"images/b.png has no mask masks/b.png"),
        (["a.png", "b.png", "b_mask.png"], r"masks/b.png and b_mask.png are both the mask of b"),
        (None, r"has images/ but no masks/ beside it"),
    ],
)
def test_images_without_their_masks_are_refused_naming_the_file(tmp_path, masks, message):
    _images_and_masks(tmp_path, ["a", "b"], masks or [])
    if masks is None:
        (tmp_path / "masks").rmdir()
    with pytest.raises(VislabError, match=message):
        find_pairs(tmp_path)
