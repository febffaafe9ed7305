"""A disk that fills up mid-command, on a real small file system (a tmpfs mounted for the
test, which needs root; skipped, saying why, where mounting is not allowed): the command fails
with a one-line error and every file it was replacing stays whole."""

from __future__ import annotations

import errno
import subprocess

import pytest
from conftest import train_args

from vislab.cli import main


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or 'not root'}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk, keep: int = 0):
    """Fill disk up, leaving about keep bytes free; returns the filler file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    if keep:
        with filler.open("r+b") as f:
            f.truncate(max(0, filler.stat().st_size - keep))
    return filler


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*.tmp"))


@pytest.fixture(scope="module")
def run(p1_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("disk_run") / "cls"
    assert main(train_args(p1_tiny, out, 1)) == 0
    return out


def test_a_full_disk_keeps_the_old_report(run, small_disk, capsys):
    out = small_disk / "rep"
    assert main(["report", str(run), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    fill(small_disk)
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert leftovers(small_disk) == []


def test_a_full_disk_keeps_the_old_predictions(run, p1_tiny, small_disk, capsys):
    pred = small_disk / "pred.csv"
    args = ["predict", "--ckpt", str(run / "checkpoints" / "best.ckpt")]
    args += ["--images", str(p1_tiny / "val_50"), "--out", str(pred), "--threads", "1"]
    assert main(args) == 0
    before = pred.read_bytes()
    fill(small_disk)
    capsys.readouterr()
    assert main(args) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert pred.read_bytes() == before and leftovers(small_disk) == []


def test_a_run_started_on_a_full_disk_can_start_again(p1_tiny, small_disk, capsys):
    out = small_disk / "cls"
    filler = fill(small_disk)
    assert main(train_args(p1_tiny, out, 1)) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (out / "config.yaml").exists()  # no 0-byte config left to block the folder
    assert leftovers(small_disk) == []
    filler.unlink()
    assert main(train_args(p1_tiny, out, 1)) == 0  # a plain run, not refused
    assert (out / "checkpoints" / "best.ckpt").is_file()


def test_a_full_disk_keeps_the_old_submission_folder(run, small_disk, capsys):
    out = small_disk / "hw1"
    args = ["submission", "--p1", str(run / "checkpoints" / "best.ckpt"), "--out", str(out)]
    assert main(args) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    fill(small_disk, keep=1 << 20)  # room for some of the folder, not all of it
    capsys.readouterr()
    assert main(args) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "hw1"]
