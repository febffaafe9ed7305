"""A classifier's prediction sized against the free memory before it runs: batches shrunk to
what fits, an input too large for it refused in one line, and an allocation that fails
anyway one line too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import train_args

import vislab.infer.predict
from vislab.cli import main
from vislab.infer.checkpoint import load_model
from vislab.infer.forward import class_probabilities


@pytest.fixture(scope="module")
def ckpt(p1_tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("memory_run") / "cls"
    assert main(train_args(p1_tiny, out, 1)) == 0
    return out / "checkpoints" / "best.ckpt"


def _predict(ckpt: Path, images: Path, out: Path) -> list[str]:
    return ["predict", "--ckpt", str(ckpt), "--images", str(images), "--out", str(out)]


def test_batches_shrink_to_what_the_free_memory_holds(ckpt, p1_tiny, tmp_path, capsys, monkeypatch):
    images = p1_tiny / "val_50"
    assert main(_predict(ckpt, images, tmp_path / "together.csv")) == 0
    _, meta = load_model(ckpt)
    one = vislab.infer.predict.predict_bytes(32, 32, meta)
    passes = []

    def counting(model, x, *args, **kwargs):
        passes.append(len(x))
        return class_probabilities(model, x, *args, **kwargs)

    monkeypatch.setattr(vislab.infer.predict, "class_probabilities", counting)
    monkeypatch.setattr(vislab.infer.predict, "available_memory", lambda: 3 * one)
    assert main(_predict(ckpt, images, tmp_path / "apart.csv")) == 0
    assert passes == [3, 3, 3, 3, 3, 1]  # 16 images, 3 a pass: the same classes
    assert (tmp_path / "apart.csv").read_text() == (tmp_path / "together.csv").read_text()


# a predict with 16 GiB free, run under a 5 GiB address-space limit: a command that tried to
# hold the inputs of a 13000x13000 model would fail at once rather than take the machine's
# memory
LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (5 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
import vislab.infer.predict
from vislab.cli import main
vislab.infer.predict.available_memory = lambda: 16 << 30
sys.exit(main(sys.argv[1:]))
"""


def test_an_input_too_large_for_the_free_memory_is_refused_in_one_line(ckpt, p1_tiny, tmp_path):
    saved = torch.load(ckpt, weights_only=True)
    saved["vislab"]["image_size"] = [13000, 13000]  # under the pixel cap: a valid size
    huge = tmp_path / "huge.ckpt"
    torch.save(saved, huge)
    argv = _predict(huge, p1_tiny / "val_50", tmp_path / "p.csv")
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "the model's input size 13000x13000" in err[0], err
    assert "needs about 248.8 GiB to predict and 16.0 GiB of memory are free" in err[0]
    assert not (tmp_path / "p.csv").exists()


def test_an_allocation_that_fails_anyway_ends_in_one_line(
    ckpt, p1_tiny, tmp_path, capsys, monkeypatch
):
    def failing(*args, **kwargs):  # what torch's CPU allocator raises
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 18432000000 bytes. Error code 12 (Cannot allocate "
            "memory)"
        )

    monkeypatch.setattr(vislab.infer.predict, "class_probabilities", failing)
    images = p1_tiny / "val_50"
    assert main(_predict(ckpt, images, tmp_path / "p.csv")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"vislab predict: error: out of memory predicting {images} (an allocation of 17.2 GiB "
        "failed); free memory, or give a smaller --batch-size"
    ]
    assert list(tmp_path.iterdir()) == []
