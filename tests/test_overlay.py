"""The overlay's full band (--full-band) against a straightforward per-pixel implementation of
the intended figure (alpha 0.3 tint, 5-pixel inner edge band along rows and columns on all four
sides, the border no edge), and the CLI. test_course_scripts.py holds the default overlay
against the course's own viz_mask.py."""

import numpy as np
import pytest
from conftest import REAL_P2, REPO
from PIL import Image

from vislab.analysis.overlay import overlay
from vislab.cli import main
from vislab.course.landcover import COLORS, read_mask
from vislab.data.synthetic import write_tile_folder


def per_pixel_overlay(image, mask, alpha=0.3, width=5):
    h, w = mask.shape
    out = np.empty(image.shape, dtype=np.float64)
    for y in range(h):
        for x in range(w):
            c = mask[y, x]
            color = COLORS[c].astype(np.float64)
            is_edge = False
            for d in range(1, width + 1):
                for yy, xx in ((y - d, x), (y + d, x), (y, x - d), (y, x + d)):
                    if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] != c:
                        is_edge = True
            out[y, x] = color if is_edge else (1 - alpha) * image[y, x] + alpha * color
    return out.astype(np.uint8)  # truncated, as the course does


@pytest.mark.parametrize("seed", range(3))
def test_full_band_equals_the_per_pixel_semantics(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(48, 40, 3)).astype(np.uint8)
    blocks = rng.integers(0, 7, size=(6, 5))
    mask = np.kron(blocks, np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
    mask[rng.random(mask.shape) < 0.02] = 3  # scattered single pixels too
    assert np.array_equal(overlay(image, mask, full=True), per_pixel_overlay(image, mask))


def test_single_class_tile_has_no_edges_at_the_border():
    image = np.full((12, 12, 3), 100, dtype=np.uint8)
    for full in (False, True):
        out = overlay(image, np.full((12, 12), 1, dtype=np.uint8), full)  # agriculture: yellow
        assert (out == np.trunc(0.7 * 100 + 0.3 * np.array([255, 255, 0]))).all()


def test_cli_on_a_file_and_on_folders(tmp_path):
    write_tile_folder(tmp_path / "tiles", 3, size=32)
    one = tmp_path / "one.png"
    assert (
        main(
            [
                "overlay",
                "--image",
                str(tmp_path / "tiles" / "0001_sat.jpg"),
                "--mask",
                str(tmp_path / "tiles" / "0001_mask.png"),
                "--out",
                str(one),
            ]
        )
        == 0
    )
    assert np.asarray(Image.open(one)).shape == (32, 32, 3)
    assert (
        main(
            [
                "overlay",
                "--image",
                str(tmp_path / "tiles"),
                "--mask",
                str(tmp_path / "tiles"),
                "--out",
                str(tmp_path / "all"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "0000.png",
        "0001.png",
        "0002.png",
    ]
    assert (tmp_path / "all" / "0001.png").read_bytes() == one.read_bytes()


def test_cli_names_the_tile_without_a_mask(tmp_path, capsys):
    write_tile_folder(tmp_path / "tiles", 2, size=16)
    (tmp_path / "masks").mkdir()
    assert (
        main(
            [
                "overlay",
                "--image",
                str(tmp_path / "tiles"),
                "--mask",
                str(tmp_path / "masks"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "no mask (0000_mask.png or 0000.png)" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.skipif(not (REAL_P2 / "validation").is_dir(), reason=f"no {REAL_P2}")
def test_full_band_on_a_real_tile_equals_the_per_pixel_semantics():
    tile = REAL_P2 / "validation" / "0013"
    image = np.asarray(Image.open(f"{tile}_sat.jpg").convert("RGB"))
    mask, _ = read_mask(f"{tile}_mask.png")
    assert np.array_equal(overlay(image, mask, full=True), per_pixel_overlay(image, mask))


def test_a_bad_mask_half_way_leaves_the_output_folder_as_it_was(tmp_path, capsys):
    write_tile_folder(tmp_path / "tiles", 3, size=32)
    Image.open(tmp_path / "tiles" / "0002_mask.png").resize((16, 16)).save(
        tmp_path / "tiles" / "0002_mask.png"
    )
    out = tmp_path / "o"
    out.mkdir()
    (out / "0000.png").write_bytes(b"an earlier overlay")
    argv = ["overlay", "--image", tmp_path / "tiles", "--mask", tmp_path / "tiles", "--out", out]
    assert main([str(a) for a in argv]) == 2
    assert "0002_mask.png" in capsys.readouterr().err
    assert [(p.name, p.read_bytes()) for p in out.iterdir()] == [
        ("0000.png", b"an earlier overlay")
    ]
    assert [p.name for p in tmp_path.glob(".o.*")] == []  # no scratch folder left


def _refused(capsys, argv) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize(
    "spec", [[], ["--config", REPO / "configs" / "own_segmentation_example.yaml"]]
)
def test_a_fifo_as_the_mask_is_named_not_opened(tmp_path, capsys, spec):
    from odd_files import fifos

    write_tile_folder(tmp_path / "tiles", 2, size=16)
    tile, out = tmp_path / "tiles" / "0000_sat.jpg", tmp_path / "o.png"
    with fifos(tmp_path / "pipe.png") as (pipe,):
        err = _refused(capsys, ["overlay", "--image", tile, "--mask", pipe, "--out", out, *spec])
        assert err.endswith(
            f"{pipe} is a FIFO (named pipe), not a mask: vislab reads regular files only"
        )
        err = _refused(capsys, ["overlay", "--image", pipe, "--mask", tile, "--out", out, *spec])
        assert err.endswith(
            f"{pipe} is a FIFO (named pipe), not a tile: vislab reads regular files only"
        )
        argv = ["overlay", "--image", tmp_path / "tiles", "--mask", pipe, "--out", tmp_path / "o"]
        err = _refused(capsys, argv)
        assert err.endswith(
            f"--mask must be the folder of its masks; {pipe} is a FIFO (named pipe)"
        )
    assert not out.exists() and not (tmp_path / "o").exists()


def test_a_fifo_in_the_mask_folder_is_named_not_taken_for_a_missing_mask(tmp_path, capsys):
    from odd_files import fifos

    write_tile_folder(tmp_path / "tiles", 2, size=16)
    masks = tmp_path / "masks"
    masks.mkdir()
    (tmp_path / "tiles" / "0000_mask.png").rename(masks / "0000.png")
    with fifos(masks / "0001.png") as (pipe,):
        argv = ["overlay", "--image", tmp_path / "tiles", "--mask", masks, "--out", tmp_path / "o"]
        err = _refused(capsys, argv)
    assert f"{pipe} is a FIFO (named pipe), not a mask: vislab reads regular files only" in err
