"""Kill a training process mid-run; `--resume` must finish it exactly like an uninterrupted run."""

import csv
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import train_args

from vislab.data.synthetic import write_p1_layout

EPOCHS = 6
AUGMENT = ("--set", "data.crop_padding=4", "--set", "data.hflip=true")
DETERMINISTIC = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")


def _train(data, out, *extra):
    cmd = [sys.executable, "-m", "vislab", *train_args(data, out, EPOCHS, *AUGMENT, *extra)]
    # Ctrl-C reaches the run as it would from a terminal: a shell that starts the tests in
    # the background (&) has them ignore SIGINT, and children inherit that
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _history(run):
    with open(run / "metrics.csv", newline="") as f:
        return [{k: r[k] for k in DETERMINISTIC} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The generated data set and an uninterrupted run over it."""
    tmp = tmp_path_factory.mktemp("reference")
    data = write_p1_layout(tmp / "data", num_classes=4, per_class=300)
    assert _train(data, tmp / "run").wait(timeout=600) == 0
    return data, tmp / "run"


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"]
)
def test_killed_run_resumes_to_the_same_final_metrics(reference, sig, tmp_path):
    data, reference = reference
    resumed = tmp_path / "resumed"

    proc = _train(data, resumed)
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until two epochs are done, then kill in the third
        metrics = resumed / "metrics.csv"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0].decode()
    done_at_kill = len(_history(resumed))
    assert 2 <= done_at_kill < EPOCHS, "the run was not interrupted"
    if sig != signal.SIGKILL:  # unwound: one line, exit 128 + the signal, no scratch file left
        word = "terminated" if sig == signal.SIGTERM else "interrupted"
        assert proc.returncode == 128 + sig and output.rstrip().endswith(word), output
        assert "Traceback" not in output
        assert [p.name for p in resumed.rglob(".*")] == [".lock"]  # the run's own lock

    again = _train(data, resumed, "--resume")
    output = again.communicate(timeout=600)[0].decode()
    assert again.returncode == 0, output
    assert "resuming from" in output

    assert _history(resumed) == _history(reference)
    assert float(_history(reference)[-1]["val_acc"]) > 0.5  # it learned (4 classes)
    a = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
