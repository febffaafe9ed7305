"""What `vislab train --resume` checks of a run folder before it trains: the config against
the saved one, the data where it moved, the checkpoint's run against the folder's; and a run's
identity at its start."""

from __future__ import annotations

import uuid
from pathlib import Path

from vislab.config import Config
from vislab.errors import VislabError
from vislab.run_folder import RunFolder, data_fingerprint


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


# how a run is executed, not what it computes: may change between a run and its resumption
# keys that change how a run is carried out, not what it computes: --resume may change them
RUNTIME_KEYS = (
    ("trainer", "threads"),
    ("trainer", "progress_bar"),
    ("trainer", "loggers"),
    ("data", "store"),
)
# keys a recipe may leave null for training to find in the data; the saved config holds what
# it found
FOUND_IN_DATA = (("data", "train"), ("data", "val"), ("model", "num_classes"))


def config_changes(cfg: Config, out: Path) -> list[str]:
    """How cfg differs from the config saved in the run folder out ("key: old -> new").

    The data root and model.init are compared as resolved paths; RUNTIME_KEYS are not
    compared."""
    saved = RunFolder(out).config().to_dict()
    now = cfg.to_dict()
    for c in (saved, now):
        for section, key in (("data", "root"), ("model", "init")):
            if c[section][key] is not None:
                c[section][key] = str(Path(c[section][key]).resolve())
        for section, key in RUNTIME_KEYS:
            c[section].pop(key, None)
    for section, key in FOUND_IN_DATA:  # left to the data: the saved value is what it found
        if now[section][key] is None:
            now[section][key] = saved[section][key]
    identity = RunFolder(out).identity() or {}
    old_root, new_root = saved["data"]["root"], now["data"]["root"]
    if old_root != new_root and new_root and identity.get("data"):
        if Path(new_root).is_dir() and data_fingerprint(Path(new_root)) == identity["data"]:
            print(f"--resume: data.root {old_root} -> {new_root}, the same files")
            now["data"]["root"] = old_root
    return _diff(saved, now)


def new_identity(cfg: Config) -> dict:
    """A run's identity (RunFolder.identity) at its start."""
    root = cfg.data.root
    data = data_fingerprint(Path(root)) if root and Path(root).is_dir() else None
    return {"id": uuid.uuid4().hex, "data": data}


def _check_checkpoint_run(run: RunFolder, last: Path) -> None:
    """The checkpoint --resume continues from is this run's own (a last.ckpt copied from
    another run would replace this run's history with that one's)."""
    from vislab.infer.meta import META_KEY

    identity = run.identity()
    if identity is None:  # a run written before runs had identities: nothing to compare
        return
    import torch

    try:
        meta = torch.load(last, map_location="cpu", weights_only=True, mmap=True).get(META_KEY)
    except Exception as e:
        raise VislabError(f"cannot read checkpoint {last}: {e}") from None
    theirs = (meta or {}).get("run_id")
    if theirs != identity["id"]:
        other = f"run {theirs}" if theirs else "a run without an identity"
        raise VislabError(
            f"--resume: {last} is a checkpoint of {other}, not of {run.path} (run "
            f"{identity['id']}); put this run's own last.ckpt back, or train it afresh with "
            "another --out"
        )


def prepare_run_dir(cfg: Config, run: RunFolder, resume: bool, rank: int) -> Path | None:
    """Check the run folder against --resume; return the checkpoint to resume from."""
    if not resume:
        # the other processes of a multi-process run start after or while rank 0 writes the
        # folder: only rank 0 checks that it is new
        if rank == 0 and (run.config_file.exists() or run.checkpoints.exists()):
            raise VislabError(
                f"{run.path} already holds a run; pass --resume to continue it or --out for a "
                "new one"
            )
        return None
    if not run.exists():
        raise VislabError(f"--resume: {run.path} holds no run (no config.yaml)")
    changes = config_changes(cfg, run.path)
    if changes:
        raise VislabError(
            f"--resume: the config differs from the one in {run.config_file}: "
            + "; ".join(changes)
            + " (to start over, remove the folder or pick another --out)"
        )
    if not run.last.exists():
        print(f"--resume: {run.path} holds no checkpoint yet; training from epoch 1")
        return None
    _check_checkpoint_run(run, run.last)
    saved = run.config().trainer.threads
    if saved != cfg.trainer.threads:
        print(
            f"--resume: trainer.threads {saved} -> {cfg.trainer.threads}: the run goes on, but "
            "sums taken in another order give weights that differ in their last bits from "
            "those of a run never interrupted (resume with the same threads to get those)"
        )
    return run.last


def epochs_done(last: Path, epochs: int) -> int:
    """Epochs finished by the run whose last.ckpt this is (Lightning stores the 0-based one),
    of the run's `epochs`: a stored epoch that is no integer from 0 to epochs - 1 (a file
    damaged or edited) is refused rather than taken as a finished run or a negative one."""
    import torch

    try:  # mmap: only the "epoch" entry is read, not gigabytes of weights
        epoch = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["epoch"]
    except Exception as e:
        raise VislabError(f"cannot read checkpoint {last}: {e}") from None
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < epochs:
        raise VislabError(
            f"--resume: {last} says it ends epoch {epoch!r} (0-based), but a checkpoint of this "
            f"run ends an epoch from 0 to {epochs - 1} (trainer.epochs {epochs}): it is damaged "
            "or edited; put the run's own last.ckpt back, or train afresh with another --out"
        )
    return epoch + 1
