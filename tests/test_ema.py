"""trainer.ema: validation, checkpoints, snapshots and predictions are the weights' moving
average; the trained weights ride along, so --resume goes on exactly."""

import json
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import train_args

from vislab.cli import main
from vislab.report.result import details
from vislab.report.run import read_run
from vislab.train.callbacks import EpochMetricsCSV, WeightEMA

EMA = ("--set", "trainer.ema=0.9", "--set", "trainer.snapshots=[1,2,3]")


def _load(path):
    return torch.load(path, weights_only=True)


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _rows(run):
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ema_run(p1_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("ema") / "run"
    assert main(train_args(p1_tiny, out, 3, *EMA)) == 0
    return out


def test_checkpoints_and_snapshots_hold_the_average_and_predict_scores_what_training_did(
    ema_run, p1_tiny, tmp_path
):
    ckpts = ema_run / "checkpoints"
    last = _load(ckpts / "last.ckpt")
    trained = {k.removeprefix("model."): v for k, v in last["current_model_state"].items()}
    average = {k.removeprefix("model."): v for k, v in last["state_dict"].items()}
    moved = [k for k in average if average[k].is_floating_point()]
    assert moved and all(not torch.equal(average[k], trained[k]) for k in moved if "weight" in k)
    assert _equal(_load(ckpts / "epoch_003.ckpt")["state_dict"], last["state_dict"])
    # best.ckpt's weights score, through predict and evaluate, what training logged for them
    pred = tmp_path / "pred.csv"
    args = ["--ckpt", str(ckpts / "best.ckpt"), "--images", str(p1_tiny / "val_50")]
    assert main(["predict", *args, "--out", str(pred), "--threads", "1"]) == 0
    gt = str(p1_tiny / "val_gt.csv")
    assert main(["evaluate", "--pred", str(pred), "--gt", gt, "--out", str(tmp_path / "e")]) == 0
    acc = json.loads((tmp_path / "e" / "metrics.json").read_text())["accuracy"]
    assert acc == pytest.approx(max(float(r["val_acc"]) for r in _rows(ema_run)), abs=1e-6)
    assert ("weights", "moving average, decay 0.9") in details(read_run(ema_run))


def test_an_average_of_decay_near_zero_is_the_trained_weights(p1_tiny, tmp_path):
    out = tmp_path / "near0"
    assert main(train_args(p1_tiny, out, 1, "--set", "trainer.ema=1e-12")) == 0
    last = _load(out / "checkpoints" / "last.ckpt")
    a, b = last["state_dict"], last["current_model_state"]
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_a_run_stopped_after_an_epoch_resumes_to_the_uninterrupted_average(
    ema_run, p1_tiny, tmp_path, monkeypatch
):
    start = EpochMetricsCSV.on_train_epoch_start

    def stop_at_epoch_2(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt
        start(self, trainer, pl_module)

    out = tmp_path / "stopped"
    monkeypatch.setattr(EpochMetricsCSV, "on_train_epoch_start", stop_at_epoch_2)
    assert main(train_args(p1_tiny, out, 3, *EMA)) != 0
    assert len(_rows(out)) == 1
    monkeypatch.setattr(EpochMetricsCSV, "on_train_epoch_start", start)
    assert main(train_args(p1_tiny, out, 3, *EMA, "--resume")) == 0
    a, b = _load(ema_run / "checkpoints" / "last.ckpt"), _load(out / "checkpoints" / "last.ckpt")
    assert _equal(a["state_dict"], b["state_dict"])
    assert _equal(a["current_model_state"], b["current_model_state"])
    assert [r["val_acc"] for r in _rows(out)] == [r["val_acc"] for r in _rows(ema_run)]


def test_the_decay_warms_up_so_the_first_steps_average_the_trained_weights():
    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2))

    net, ema = Net(), WeightEMA(decay=0.999)
    ema.setup(None, net, "fit")
    trainer, expected = SimpleNamespace(global_step=0), torch.zeros(2)
    for step in range(1, 301):
        with torch.no_grad():
            net.w.fill_(float(step))
        trainer.global_step = step
        ema.on_train_batch_end(trainer, net, None, None, step - 1)
        # TensorFlow's num_updates warm-up: n updates done, this one keeps min(d, (1+n)/(10+n))
        keep = min(0.999, (1 + (step - 1)) / (10 + (step - 1))) if step > 1 else 0.0
        expected = expected * keep + float(step) * (1 - keep)
    average = ema.averaged_state_dict()["w"]
    assert torch.allclose(average, expected.expand(2), rtol=1e-5)
    # the weights of step 300 weigh in; a plain 0.999 average would still be near its start (1.0)
    assert average[0] > 250 and expected[0] > 250
