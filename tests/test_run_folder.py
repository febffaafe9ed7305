"""The run folder: one training process at a time, a config that reads the same from any
folder, and files that are whole or absent."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, train_args

from vislab.cli import main
from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, scratch_name
from vislab.run_folder import RunFolder


def test_a_second_training_into_a_folder_in_use_is_refused_and_a_killed_one_lets_go(
    p1_tiny, tmp_path, capsys
):
    """A real training holds the folder: another one is refused without writing a byte; once
    the first is killed, the folder is free (the next refusal is the config check's)."""
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "vislab", *train_args(p1_tiny, out, 500)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not RunFolder(out).metrics_file.exists():  # the first epoch has ended
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first training wrote no epoch in 120 s"
            time.sleep(0.2)
        config = RunFolder(out).config_file.read_bytes()
        other = train_args(p1_tiny, out, 500, "--resume", "--set", "optim.lr=0.05")
        assert main(other) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another vislab train (process {first.pid})" in err
        assert RunFolder(out).config_file.read_bytes() == config
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with RunFolder(out).lock():
        pass
    assert main(other) == 2
    assert "--resume: the config differs" in capsys.readouterr().err


def test_the_lock_refuses_a_second_holder_in_the_same_process(tmp_path):
    run = RunFolder(tmp_path / "run")
    with run.lock():
        held = f"in use by another vislab train \\(process {os.getpid()}\\)"
        with pytest.raises(VislabError, match=held):
            with run.lock():
                pass
    with run.lock():  # released
        pass


def test_the_lock_clears_the_scratch_files_of_a_killed_run(tmp_path):
    import subprocess
    import sys

    run = RunFolder(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    pid = int(dead.stdout)  # a process that has ended (SIGKILLed while saving last.ckpt)
    tag = scratch_name(run.path, "tmp").name.split(".")[-2][:4]  # this host's
    left = run.checkpoints / f".last.ckpt.{pid}.{tag}2c3d.tmp"
    left.write_bytes(b"half a checkpoint")
    live = run.path / f".metrics.csv.{os.getpid()}.0a1b2c3d.tmp"  # a live process's: kept
    live.write_bytes(b"")
    mine = run.checkpoints / "notes.tmp"  # not a scratch name
    mine.write_bytes(b"")
    with run.lock():
        assert not left.exists() and live.exists() and mine.exists()


def test_the_data_root_is_stored_absolute_so_analysis_runs_from_any_folder(
    p1_tiny, tmp_path, monkeypatch
):
    monkeypatch.chdir(p1_tiny.parent)
    out = tmp_path / "run"
    args = train_args(p1_tiny.relative_to(p1_tiny.parent), out, 1)
    assert main(args) == 0
    cfg = RunFolder(out).config()
    assert cfg.data.root == str(p1_tiny.resolve())
    monkeypatch.chdir(tmp_path)
    assert RunFolder(out).config().data.resolve(cfg.data.val) == p1_tiny.resolve() / "val_50"


@pytest.mark.parametrize("text", ["", "- a list\n", "task: [unclosed\n", "model: {nme: x}\n"])
def test_a_broken_config_yaml_is_a_one_line_error_for_resume_and_report(tmp_path, capsys, text):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(text)
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vislab report: error: {run / 'config.yaml'}") and "\n" not in err


def test_atomic_writes_of_two_writers_never_share_a_temporary_file(tmp_path, monkeypatch):
    """A writer that dies mid-write leaves the old file and removes only its own temporary."""
    target = tmp_path / "metrics.csv"
    target.write_text("old")
    other_tmp = tmp_path / ".metrics.csv.99999.abcd.tmp"  # another process's, mid-write
    other_tmp.write_text("half")

    def fail(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old" and other_tmp.read_text() == "half"
    assert sorted(p.name for p in tmp_path.iterdir()) == [other_tmp.name, "metrics.csv"]
    monkeypatch.undo()
    atomic_write_bytes(target, b"new")
    assert target.read_text() == "new"


def test_resume_of_a_folder_without_a_checkpoint_says_it_starts_over(p1_tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(p1_tiny, out, 1)) == 0
    for name in ("best.ckpt", "last.ckpt", "epoch_001.ckpt"):
        (out / "checkpoints" / name).unlink()
    assert main(train_args(p1_tiny, out, 1, "--resume")) == 0
    assert f"--resume: {out} holds no checkpoint yet; training from epoch 1" in (
        capsys.readouterr().out
    )


def test_resume_with_another_thread_count_says_what_it_changes(p1_tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(p1_tiny, out, 1)) == 0  # trainer.threads=1
    capsys.readouterr()
    assert main([*train_args(p1_tiny, out, 1, "--resume"), "--set", "trainer.threads=2"]) == 0
    said = capsys.readouterr().out
    assert "--resume: trainer.threads 1 -> 2: the run goes on" in said
    assert main(train_args(p1_tiny, out, 1, "--resume")) == 0  # the saved count: no note
    assert "trainer.threads" not in capsys.readouterr().out


def test_a_metrics_csv_cut_short_is_an_error_not_fewer_rows(p1_tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(p1_tiny, out, 2)) == 0
    text = (out / "metrics.csv").read_text()
    (out / "metrics.csv").write_text(text[: len(text) - 7])  # the copy stopped mid-row
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 2
    assert "metrics.csv is cut short at line 3" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["{cut", "[1, 2]", '{"classes": ["a"]}'])
def test_a_broken_class_balance_json_is_a_one_line_error(p1_tiny, tmp_path, capsys, text):
    out = tmp_path / "run"
    assert main(train_args(p1_tiny, out, 1)) == 0
    (out / "class_balance.json").write_text(text)
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vislab report: error: {out / 'class_balance.json'}") and "\n" not in err
