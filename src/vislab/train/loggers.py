"""`trainer.loggers`: Lightning's experiment loggers, writing into the run folder's logs/.

metrics.csv (one row per epoch, train/callbacks.py) is written whatever the loggers; these
add what users of TensorBoard, MLflow and Weights & Biases already read: the metrics of each
epoch, its learning rate, and the recipe as hyperparameters.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import TYPE_CHECKING, Any

from vislab.errors import VislabError

if TYPE_CHECKING:
    from vislab.run_folder import RunFolder

LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")
# the modules each logger needs (MLflow's SQLite store: SQLAlchemy and Alembic); vislab's
# extra of the logger's name installs them
_NEEDS = {
    "tensorboard": ("tensorboard",),
    "mlflow": ("mlflow", "sqlalchemy", "alembic"),
    "wandb": ("wandb",),
}


def check_loggers(names: list[str]) -> None:
    """Each logger named is one vislab knows, named once, with its package installed: one line
    before any data is read."""
    for name in names:
        if name not in LOGGERS:
            raise VislabError(
                f"config key trainer.loggers: {name!r} is not one of {', '.join(LOGGERS)}"
            )
    if len(set(names)) != len(names):
        raise VislabError(f"config key trainer.loggers: {names} names a logger twice")
    if "wandb" in names and not _wandb_can_log():
        raise VislabError(
            "config key trainer.loggers: wandb has no login here (wandb login, or "
            "WANDB_API_KEY); with WANDB_MODE=offline it logs into RUN/logs/wandb without one"
        )
    for name in names:
        for module in _NEEDS.get(name, ()):
            if importlib.util.find_spec(module) is None:
                raise VislabError(
                    f"config key trainer.loggers: {name} needs the {module} package "
                    f"(pip install 'vislab[{name}]')"
                )


def _wandb_can_log() -> bool:
    """W&B runs offline (or disabled), or has an API key: in the environment or, as `wandb
    login` stores it, in ~/.netrc for its server."""
    import netrc
    from urllib.parse import urlparse

    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim.lr": 0.01, ...}: a recipe as the flat hyperparameters loggers show."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def make_loggers(names: list[str], run: RunFolder, config: dict, run_id: str) -> list:
    """Lightning loggers for names (LOGGERS), each writing under RUN/logs/ (MLflow: into
    MLFLOW_TRACKING_URI when it is set; W&B: offline when WANDB_MODE=offline), each given the
    recipe as hyperparameters and the run's identity."""
    from lightning.pytorch import loggers as pl_loggers

    logs = run.path.resolve() / "logs"
    made = []
    for name in names:
        if name == "csv":
            made.append(pl_loggers.CSVLogger(logs, name="csv", version=""))
        elif name == "tensorboard":
            made.append(
                pl_loggers.TensorBoardLogger(
                    logs, name="tensorboard", version="", default_hp_metric=False
                )
            )
        elif name == "mlflow":
            # MLflow's own default store is a SQLite file; its folder store is retired
            logs.mkdir(parents=True, exist_ok=True)
            uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{logs / 'mlflow.db'}"
            for quiet in ("mlflow.store.db.utils", "alembic"):  # "Creating tables ..."
                logging.getLogger(quiet).setLevel(logging.WARNING)
            made.append(
                pl_loggers.MLFlowLogger(
                    experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "vislab"),
                    run_name=run.path.name,
                    tracking_uri=uri,
                    artifact_location=(logs / "mlflow-artifacts").as_uri(),
                    tags={"vislab_run_id": run_id},
                )
            )
        else:
            logs.mkdir(parents=True, exist_ok=True)
            made.append(
                pl_loggers.WandbLogger(
                    name=run.path.name,
                    save_dir=str(logs),
                    project=os.environ.get("WANDB_PROJECT", "vislab"),
                    config={"vislab_run_id": run_id},
                )
            )
    hparams = _flat(config)
    for logger in made:
        logger.log_hyperparams(hparams)
    return made


def finish_loggers(loggers: list) -> None:
    """End what Lightning leaves open: W&B's run stays the process's current one after
    training, so the next training in the same process (`vislab reproduce`) would log into it."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()
