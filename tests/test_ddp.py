"""Lightning DDP on the CPU (gloo): 2 processes train what 1 process trains, rank 0 writes.

With data.batch_size halved per process, the ranks' batches together are the single process's
batches (vislab's sampler deals its one-process order out to the ranks) and DDP averages the
same gradients. Batch norm would still normalise over each rank's half batch (CPU DDP has no
synchronised batch norm), so the test trains Model A without it, and without augmentation
(each rank draws its own crops and flips). Tolerance: train and val
accuracy equal, losses within 1e-4 (float reduction order differs).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def _train(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    # a subprocess: Lightning starts the other ranks by re-running this very command line
    cmd = [sys.executable, "-m", "vislab", "train", str(REPO / "configs" / "p1_model_a.yaml")]
    cmd += ["--data", str(data), "--out", str(out), "--epochs", "2"]
    sets = ["model.num_classes=4", "model.kwargs.batch_norm=false"]
    sets += ["data.hflip=false", "data.crop_padding=0"]
    sets += ["trainer.threads=1", "trainer.accelerator=cpu"]
    sets += list(extra)
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_two_processes_match_one_and_only_rank_0_writes(store, p1_tiny, tmp_path, monkeypatch):
    """store disk: the ranks map one decoded copy from the cache (built by whichever rank came
    first, the other waiting) instead of each decoding its own."""
    monkeypatch.setenv("VISLAB_CACHE", str(tmp_path / "cache"))
    one = _train(p1_tiny, tmp_path / "one", "data.batch_size=16")
    assert one.returncode == 0, one.stderr[-2000:]
    two = _train(
        p1_tiny,
        tmp_path / "two",
        "data.batch_size=8",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        f"data.store={store}",
    )
    cached = sorted((tmp_path / "cache" / "decoded").glob("*/complete.json"))
    assert len(cached) == (2 if store == "disk" else 0)  # train and val, once each
    assert two.returncode == 0, two.stderr[-2000:]
    assert "GLOBAL_RANK: 1" in two.stdout + two.stderr  # there really were two processes
    a, b = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["epoch"] for r in b] == ["1", "2"]  # one row per epoch, not one per rank
    for ra, rb in zip(a, b, strict=True):
        assert abs(float(ra["val_loss"]) - float(rb["val_loss"])) < 1e-4
        assert ra["val_acc"] == rb["val_acc"]
        assert abs(float(ra["train_loss"]) - float(rb["train_loss"])) < 1e-4
        assert ra["train_acc"] == rb["train_acc"]  # the same 64 predictions, batch by batch
    files = sorted(
        p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*")
    )
    assert files == [
        ".lock",  # rank 0's: the other ranks join the folder it holds
        "checkpoints",
        "checkpoints/best.ckpt",
        "checkpoints/epoch_001.ckpt",
        "checkpoints/epoch_002.ckpt",
        "checkpoints/last.ckpt",
        "class_balance.json",
        "config.yaml",
        "metrics.csv",
        "run.json",
    ]
    assert two.stdout.count("best val_acc") == 1  # rank 0 reports; rank 1 is silent
