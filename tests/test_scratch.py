"""Scratch files of killed processes: a single-file output (a prediction CSV, an export) is
written through a temporary file beside it, and what a process killed mid-write (SIGKILL, a
power cut) left there goes the next time any vislab command writes into that folder."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import train_args

from vislab.cli import main
from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, exclusive, scratch_name, staged_into


def _dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _here() -> str:
    """The tag of this host that begins the RANDOM part of its scratch names."""
    return scratch_name(Path("x"), "tmp").name.split(".")[-2][:4]


def test_a_dead_processs_temporary_file_goes_at_the_first_write_into_its_folder(tmp_path):
    dead = tmp_path / f".s.onnx.{_dead_pid()}.{_here()}2c3d.tmp"
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


def test_only_this_hosts_dead_processes_leftovers_go(tmp_path):
    # a folder on a shared file system: a PID of another host's says nothing about it here
    pid, other = _dead_pid(), f"{(int(_here(), 16) + 1) % 0x10000:04x}"
    theirs = tmp_path / f".s.onnx.{pid}.{other}2c3d.tmp"
    ours = tmp_path / f".t.csv.{pid}.{_here()}2c3d.tmp"
    for leftover in (theirs, ours):
        leftover.write_bytes(b"half")
    atomic_write_bytes(tmp_path / "u.csv", b"x")
    assert theirs.exists() and not ours.exists()


@pytest.mark.parametrize("code", [errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_folder_the_file_system_cannot_lock_is_written_unlocked(tmp_path, monkeypatch, code):
    import fcntl

    def cannot(fd, operation):  # NFS: an exclusive lock on a folder opened for reading
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", cannot)
    with staged_into(tmp_path / "masks", "--out") as scratch:
        (scratch / "a.png").write_bytes(b"a")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "masks"]


def test_no_process_is_named_where_the_lock_table_does_not_tell(tmp_path, monkeypatch):
    import vislab.fileio

    monkeypatch.setattr(vislab.fileio, "_lock_holder", lambda folder: None)  # no /proc/locks
    # a live process's scratch name: not the holder's for all anyone knows
    (tmp_path / f".p.csv.{os.getpid()}.{_here()}2c3d.tmp").write_bytes(b"")
    with exclusive(tmp_path, "--out"), pytest.raises(VislabError) as refused:
        with exclusive(tmp_path, "--out"):
            pass
    assert str(refused.value) == (
        f"--out {tmp_path} is being written by another vislab command; wait for it to end or "
        "write elsewhere"
    )


# the moves of a staged folder with the signal's default action: the signal comes during them
DEFAULT_ACTION = """
import os, signal, sys
from pathlib import Path
from vislab.fileio import staged_into
signum = int(sys.argv[2])
signal.signal(signum, signal.SIG_DFL)
replace = os.replace
def signalled(a, b):
    os.kill(os.getpid(), signum)
    replace(a, b)
os.replace = signalled
with staged_into(Path(sys.argv[1]), "--out") as scratch:
    (scratch / "a.png").write_bytes(b"a")
    (scratch / "b.png").write_bytes(b"b")
"""


@pytest.mark.parametrize(("signum", "rc"), [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)])
def test_a_default_signal_inside_uninterrupted_ends_after_the_finally_blocks(tmp_path, signum, rc):
    args = [sys.executable, "-c", DEFAULT_ACTION, str(tmp_path / "masks"), str(int(signum))]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == rc, done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "b.png", "masks"]  # no scratch
