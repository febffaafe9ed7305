import numpy as np
import pytest
from PIL import Image

from vislab.data.images import load_labeled, load_unlabeled
from vislab.data.synthetic import write_flat_folder
from vislab.errors import VislabError


def _png(path, size=(32, 32), value=0, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_flat_folder_labels_come_from_names(tmp_path):
    names = write_flat_folder(tmp_path / "train", num_classes=3, per_class=4)
    s = load_labeled(tmp_path / "train")
    assert s.images.shape == (12, 32, 32, 3) and s.images.dtype == np.uint8
    assert s.names == sorted(names)
    assert s.labels.tolist() == [int(n.split("_")[0]) for n in sorted(names)]
    assert s.classes == ["0", "1", "2"]


def test_decoded_pixels_equal_the_files(tmp_path):
    write_flat_folder(tmp_path, num_classes=2, per_class=2)
    s = load_labeled(tmp_path)
    for name, img in zip(s.names, s.images, strict=True):
        assert np.array_equal(img, np.asarray(Image.open(tmp_path / name)))


def test_labels_from_csv_override_names(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    _png(tmp_path / "imgs" / "b.png")
    (tmp_path / "gt.csv").write_text("filename,label\nb.png,1\na.png,2\n")
    s = load_labeled(tmp_path / "imgs", labels_csv=tmp_path / "gt.csv")
    assert s.names == ["a.png", "b.png"] and s.labels.tolist() == [2, 1]


def test_image_folder_tree(tmp_path):
    for cls, n in [("cat", 2), ("dog", 3)]:
        for i in range(n):
            _png(tmp_path / cls / f"{i}.jpg", value=(i, i, i))
    s = load_labeled(tmp_path)
    assert s.classes == ["cat", "dog"]
    assert s.labels.tolist() == [0, 0, 1, 1, 1]
    assert s.names[0] == "cat/0.jpg"


def test_a_validation_tree_is_numbered_by_the_training_sets_classes(tmp_path):
    """A validation tree that lacks a class keeps the labels after it; hidden entries
    (.ipynb_checkpoints/, macOS's ._ files) are neither classes nor images; a class the
    training set has not is refused."""
    for cls in ("ant", "bee", "cat"):
        _png(tmp_path / "train" / cls / "0.png")
    _png(tmp_path / "val" / "cat" / "0.png")
    _png(tmp_path / "val" / ".ipynb_checkpoints" / "0.png")
    (tmp_path / "val" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    train = load_labeled(tmp_path / "train")
    val = load_labeled(tmp_path / "val", classes=train.classes)
    assert val.labels.tolist() == [2] and val.names == ["cat/0.png"]
    assert val.classes == ["ant", "bee", "cat"]
    _png(tmp_path / "val" / "dog" / "0.png")
    with pytest.raises(VislabError, match="class folder\\(s\\) the training set has not: dog"):
        load_labeled(tmp_path / "val", classes=train.classes)


def test_hidden_files_in_a_flat_folder_are_left_out(tmp_path):
    write_flat_folder(tmp_path, num_classes=2, per_class=2)
    (tmp_path / "._0_0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert len(load_unlabeled(tmp_path).names) == 4


def test_unlabeled_folder_and_grayscale_becomes_rgb(tmp_path):
    _png(tmp_path / "x.png", mode="L", value=7)
    _png(tmp_path / "y.png", mode="RGBA", value=(1, 2, 3, 4))
    s = load_unlabeled(tmp_path)
    assert s.labels is None and s.images.shape == (2, 32, 32, 3)
    assert s.images[0].max() == 7 and s.images[1][0, 0].tolist() == [1, 2, 3]


def test_max_per_class_keeps_the_first_files_of_each_class(tmp_path):
    write_flat_folder(tmp_path, num_classes=3, per_class=5)
    s = load_labeled(tmp_path, max_per_class=2)
    assert np.bincount(s.labels).tolist() == [2, 2, 2]


def test_mixed_sizes_are_refused_unless_resized(tmp_path):
    _png(tmp_path / "0_1.png", size=(32, 32))
    _png(tmp_path / "0_2.png", size=(40, 32))
    with pytest.raises(VislabError, match=r"0_2.png is 40x32 but 0_1.png is 32x32"):
        load_labeled(tmp_path)
    s = load_labeled(tmp_path, image_size=16)
    assert s.images.shape == (2, 16, 16, 3)


@pytest.mark.parametrize(
    "setup, message",
    [
        ("empty", "no images"),
        ("missing", "not a folder"),
        ("no_label", r"cat.png: file name does not start with a label"),
        ("out_of_range", r"7_0.png: label 7 is outside 0..4"),
        ("truncated", r"cannot read image .*0_1.png"),
        ("not_an_image", r"cannot read image .*0_2.png"),
        ("zero_bytes", r"cannot read image .*0_3.png"),
    ],
)
def test_bad_folders_name_the_file(tmp_path, setup, message):
    folder = tmp_path / "f"
    folder.mkdir()
    _png(folder / "0_0.png")
    if setup == "empty":
        (folder / "0_0.png").unlink()
    elif setup == "missing":
        folder = tmp_path / "nope"
    elif setup == "no_label":
        _png(folder / "cat.png")
    elif setup == "out_of_range":
        _png(folder / "7_0.png")
    elif setup == "truncated":
        data = (folder / "0_0.png").read_bytes()
        (folder / "0_1.png").write_bytes(data[: len(data) // 2])
    elif setup == "not_an_image":
        (folder / "0_2.png").write_text("hello")
    elif setup == "zero_bytes":
        (folder / "0_3.png").write_bytes(b"")
    with pytest.raises(VislabError, match=message):
        load_labeled(folder, classes=[str(k) for k in range(5)])


def test_csv_without_a_row_for_a_file(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    _png(tmp_path / "imgs" / "b.png")
    (tmp_path / "gt.csv").write_text("filename,label\na.png,0\n")
    with pytest.raises(VislabError, match="no label for 1 file.*b.png"):
        load_labeled(tmp_path / "imgs", labels_csv=tmp_path / "gt.csv")


def test_a_flat_folders_classes_run_up_to_its_largest_label(tmp_path):
    """Labels 0, 2 and 5: six classes "0".."5" (1, 3 and 4 merely absent), numbered as named."""
    labels = [0, 2, 2, 5]
    for i, label in enumerate(labels):
        _png(tmp_path / f"{label}_{i}.png")
    s = load_labeled(tmp_path)
    assert s.classes == [str(k) for k in range(max(labels) + 1)]
    assert s.labels.tolist() == labels


def test_named_classes_number_a_flat_folder_and_bound_its_labels(tmp_path):
    names = ["sea", "sand", "rock"]
    for label in (0, 2):
        _png(tmp_path / "f" / f"{label}_0.png")
    s = load_labeled(tmp_path / "f", classes=names)
    assert s.classes == names and s.labels.tolist() == [0, 2]
    _png(tmp_path / "f" / "3_1.png")
    with pytest.raises(VislabError, match=r"3_1.png: label 3 is outside 0..2") as e:
        load_labeled(tmp_path / "f", classes=names)
    assert "\n" not in str(e.value)


def test_a_validation_folder_is_bounded_by_the_training_sets_classes(tmp_path):
    write_flat_folder(tmp_path / "train", num_classes=3, per_class=2)
    _png(tmp_path / "val" / "1_0.png")
    _png(tmp_path / "val" / "4_0.png")
    train = load_labeled(tmp_path / "train")
    with pytest.raises(VislabError, match=r"4_0.png: label 4 is outside 0..2"):
        load_labeled(tmp_path / "val", classes=train.classes)


def test_a_training_tree_must_hold_the_declared_classes_in_order(tmp_path):
    for cls in ("cat", "dog"):
        _png(tmp_path / cls / "0.png")
    s = load_labeled(tmp_path, classes=["cat", "dog"], complete=True)
    assert s.classes == ["cat", "dog"] and s.labels.tolist() == [0, 1]
    for declared in (["dog", "cat"], ["cat", "dog", "eel"], ["cat"]):
        with pytest.raises(VislabError, match=r"data.classes .* are not its class folders") as e:
            load_labeled(tmp_path, classes=declared, complete=True)
        assert "\n" not in str(e.value)


def png16(path, pixels, colour):
    """A 16-bit PNG of colour type colour (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA) holding
    pixels, (H, W, channels) values of 0..65535."""
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    pixels = np.asarray(pixels, dtype=">u2")
    h, w = pixels.shape[:2]
    rows = b"".join(b"\0" + row.tobytes() for row in pixels)
    head = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    body = chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


# 16-bit values and their high bytes: 0x01FF is 1 (not 2, as rounding 511 / 257 would give)
DEEP = [[65535, 0, 32896, 0x01FF], [0x1234, 0xFF00, 257, 0x00FF]]
HIGH = [[255, 0, 128, 1], [0x12, 0xFF, 1, 0]]


@pytest.mark.parametrize(("colour", "channels"), [(2, [0, 1, 2]), (6, [0, 1, 2]), (4, [0, 0, 0])])
def test_16_bit_colour_pngs_are_read_as_their_high_bytes(tmp_path, colour, channels):
    """Pillow reads 16-bit RGB, RGBA and grey-with-alpha PNGs as 8-bit by each value's high
    byte: a faithful reduction (grey replicated, alpha dropped), not a clip."""
    from vislab.data.images import read_rgb

    n = {2: 3, 4: 2, 6: 4}[colour]
    deep = np.stack([np.roll(DEEP, c, axis=1) for c in range(n)], axis=-1)
    high = np.stack([np.roll(HIGH, c, axis=1) for c in range(n)], axis=-1).astype(np.uint8)
    path = png16(tmp_path / "deep.png", deep, colour)
    assert np.array_equal(read_rgb(path), high[..., channels])


def test_16_bit_grey_is_refused_as_pillow_would_clip_it(tmp_path):
    from vislab.data.images import read_rgb

    path = png16(tmp_path / "grey.png", np.asarray(DEEP)[..., None], 0)
    with pytest.raises(VislabError) as e:
        read_rgb(path)
    assert str(e.value) == (
        f"{path} is a I;16 (16-bit grey) image, more than 8 bits per channel, which Pillow "
        "would clip: convert it to 8-bit RGB first"
    )


def test_a_csv_field_past_the_csv_modules_limit_is_named_with_its_line(tmp_path):
    from vislab.data.images import read_name_csv

    big = tmp_path / "big.csv"
    big.write_text("filename,label\na.png,0\nb.png," + "x" * 140_000 + "\nc.png,1\n")
    with pytest.raises(VislabError) as e:
        read_name_csv(big)
    assert str(e.value).startswith(f"{big} line 3: field larger than field limit (131072)")


def test_a_tree_given_where_a_flat_folder_is_read_is_named_as_a_tree(tmp_path):
    from vislab.data.images import list_images

    _png(tmp_path / "val" / "cat" / "0.png")
    _png(tmp_path / "val" / "dog" / "1.png")
    with pytest.raises(VislabError) as e:
        list_images(tmp_path / "val")
    assert str(e.value) == (
        f"{tmp_path / 'val'} holds class folders (cat, dog), not images: this reads a flat "
        f"folder of images; give it one class folder ({tmp_path / 'val' / 'cat'}) at a time"
    )
