"""trainer.loggers: TensorBoard, MLflow, W&B (offline) and Lightning's CSV logger write into
the run folder's logs/ what metrics.csv holds; an unknown or uninstalled logger is one line
before any data is read."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import train_args

from vislab.cli import main


@pytest.fixture(scope="module")
def logged(p1_tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("loggers") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        loggers = "trainer.loggers=[csv, tensorboard, mlflow, wandb]"
        assert main(train_args(p1_tiny, run, 2, "--set", loggers)) == 0
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # the run folder's own record, as always
    return run, rows


def test_tensorboard_holds_the_epochs_metrics(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, rows = logged
    (events,) = (run / "logs" / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    for key in ("val_acc", "val_loss", "train_loss"):
        values = [e.value for e in acc.Scalars(key)]
        assert values == pytest.approx([float(r[key]) for r in rows], abs=1e-5), key
    lr = [e.value for e in acc.Scalars("lr-SGD")]  # float32 in the event file
    assert lr == pytest.approx([float(r["lr"]) for r in rows], rel=1e-6)


def test_mlflow_store_holds_the_run_its_recipe_and_metrics(logged):
    from mlflow.tracking import MlflowClient

    run, rows = logged
    client = MlflowClient(tracking_uri=f"sqlite:///{run.resolve() / 'logs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("vislab")
    (found,) = client.search_runs([experiment.experiment_id])
    identity = json.loads((run / "run.json").read_text())
    assert found.data.tags["vislab_run_id"] == identity["id"]
    assert found.info.run_name == run.name and found.info.status == "FINISHED"
    assert float(found.data.params["optim.lr"]) == 0.01
    assert found.data.params["model.name"] == "model_a"
    history = client.get_metric_history(found.info.run_id, "val_acc")
    got = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert got == pytest.approx([float(r["val_acc"]) for r in rows], abs=1e-6)


def test_csv_and_wandb_logs_are_written_in_the_run_folder(logged):
    run, rows = logged
    with (run / "logs" / "csv" / "metrics.csv").open(newline="") as f:
        logged_rows = [r for r in csv.DictReader(f) if r["val_acc"]]
    assert [float(r["val_acc"]) for r in logged_rows] == pytest.approx(
        [float(r["val_acc"]) for r in rows], abs=1e-6
    )
    (offline,) = (run / "logs" / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb"))  # what `wandb sync` uploads
    assert not list(run.parent.glob("wandb")) and not (run.parent / "mlruns").exists()


def test_loggers_users_get_wrong_are_one_line_before_the_data(
    p1_tiny, tmp_path, capsys, monkeypatch
):
    import importlib.util

    run = tmp_path / "run"

    def refused(setting: str, message: str) -> None:
        assert main(train_args(p1_tiny, run, 1, "--set", setting)) == 2
        out = capsys.readouterr()
        errors = [line for line in out.err.splitlines() if "error:" in line]
        assert len(errors) == 1 and message in errors[0], out.err
        assert "data:" not in out.out  # nothing decoded
        assert not (run / "checkpoints").exists()

    refused("trainer.loggers=[tensorbored]", "'tensorbored' is not one of csv, tensorboard")
    refused("trainer.loggers=[csv, csv]", "names a logger twice")
    refused("trainer.loggers=tensorbored", "'tensorbored' is not one of")  # one name alone
    for variable in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in
    refused("trainer.loggers=[wandb]", "wandb has no login here (wandb login, or WANDB_API_KEY)")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name)
    )
    refused(
        "trainer.loggers=[mlflow]", "mlflow needs the mlflow package (pip install 'vislab[mlflow]')"
    )
