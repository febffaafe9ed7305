import json
import signal
import subprocess
import sys

import pytest
from conftest import seg_train_args
from PIL import Image
from stalling import stalled_at

from vislab.cli import main
from vislab.course.landcover import read_mask
from vislab.metrics.miou import confusion, scores


@pytest.fixture(scope="module")
def run3(p2_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("prog") / "run"
    assert main(seg_train_args(p2_tiny, out, 3)) == 0
    return out


def test_grid_shows_each_snapshot_with_the_tiles_miou(run3, p2_tiny, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["progress", str(run3), "--tiles", "0000", "0002", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["epochs"] == [1, 2, 3]
    w, h = Image.open(out).size
    assert w > 1000 and h > 500  # 5 columns x 2 rows of panels

    masks = tmp_path / "masks"
    main(
        [
            "predict",
            "--ckpt",
            str(run3 / "checkpoints" / "epoch_003.ckpt"),
            "--images",
            str(p2_tiny / "validation"),
            "--out",
            str(masks),
        ]
    )
    truth, _ = read_mask(p2_tiny / "validation" / "0002_mask.png")
    pred, _ = read_mask(masks / "0002.png")
    assert result["miou"]["0002"][-1] == pytest.approx(
        scores(confusion(truth, pred, 7))["miou_present"]
    )


def test_unknown_tile_and_run_without_snapshots_are_refused(run3, tmp_path, capsys):
    assert main(["progress", str(run3), "--tiles", "9999"]) == 2
    assert "no tile" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("task: classification\n")
    assert main(["progress", str(tmp_path)]) == 2
    assert "is a classification run" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("task: segmentation\n")
    assert main(["progress", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "no snapshots" in capsys.readouterr().err


# a progress that stops once its figure is drawn, before its numbers are written
STALLED = stalled_at("vislab.analysis.progress", "draw_grid", "drawn")


def test_the_figure_and_its_numbers_land_together_or_not_at_all(run3, tmp_path, capsys):
    from vislab.fileio import exclusive

    out = tmp_path / "grid.png"
    argv = ["progress", str(run3), "--tiles", "0000", "--out", str(out)]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    argv[3] = "0001"  # another figure, other numbers
    proc = subprocess.Popen([sys.executable, "-c", STALLED, *argv], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"drawn"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no scratch left
    capsys.readouterr()
    with exclusive(tmp_path, "--out"):  # another command writing into the folder
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: its folder {tmp_path} is held by another vislab command" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
