"""Scratch files of killed processes: a single-file output (a prediction CSV, an export) is
written through a temporary file beside it, and what a process killed mid-write (SIGKILL, a
power cut) left there goes the next time any vislab command writes into that folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import train_args

from vislab.cli import main
from vislab.fileio import atomic_write_bytes


def _dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_dead_processs_temporary_file_goes_at_the_first_write_into_its_folder(tmp_path):
    dead = tmp_path / f".s.onnx.{_dead_pid()}.0a1b2c3d.tmp"
    dead.write_bytes(b"half an export")
    live = tmp_path / f".p.csv.{os.getpid()}.0a1b2c3d.tmp"  # a running writer's: kept
    live.write_bytes(b"")
    mine = tmp_path / ".notes.tmp"  # no scratch name
    mine.write_bytes(b"")
    atomic_write_bytes(tmp_path / "s.onnx", b"whole")
    assert not dead.exists() and live.exists() and mine.exists()
    assert (tmp_path / "s.onnx").read_bytes() == b"whole"
    # once a folder and process: a thousand files written into one folder list it once
    later = tmp_path / f".t.csv.{_dead_pid()}.0a1b2c3d.tmp"
    later.write_bytes(b"")
    atomic_write_bytes(tmp_path / "t.csv", b"x")
    assert later.exists()  # the next process's first write takes it


# a predict that stops inside its CSV's write (the bytes in the temporary file, not yet
# renamed) so that it can be killed there
STALLED = """
import os, sys, time
from vislab.cli import main
def stalled(fd):
    print("writing", flush=True)
    time.sleep(120)
os.fsync = stalled
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def ckpt(p1_tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scratch_run") / "cls"
    assert main(train_args(p1_tiny, out, 1)) == 0
    return out / "checkpoints" / "best.ckpt"


def test_a_csv_killed_mid_write_leaves_nothing_after_the_next_predict(ckpt, p1_tiny, tmp_path):
    out = tmp_path / "p.csv"
    argv = ["predict", "--ckpt", str(ckpt), "--images", str(p1_tiny / "val_50")]
    argv += ["--out", str(out), "--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", STALLED, *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)  # no code of its own runs
        proc.wait(timeout=60)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 1 and left[0].startswith(f".p.csv.{proc.pid}.")  # its temporary file
    assert main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


def test_a_signal_inside_uninterrupted_is_acted_on_when_it_ends():
    from vislab.fileio import uninterrupted

    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("handled"))
    try:
        with uninterrupted():  # the renames of one command's files
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # Python runs its handlers between bytecodes
                pass
            seen.append("renamed")
    finally:
        signal.signal(signal.SIGTERM, before)
    assert seen == ["renamed", "handled"]
