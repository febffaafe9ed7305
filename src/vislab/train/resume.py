"""What `vislab train --resume` checks of a run folder before it trains: the config against
the saved one, the data against the fingerprint the run started with, every checkpoint's run
and last.ckpt's model against the folder's; and a run's identity at its start."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

from vislab.config import Config
from vislab.errors import VislabError
from vislab.run_folder import RunFolder
from vislab.train.data_fingerprint import data_change, data_record


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


def _recorded_data(run: RunFolder) -> dict | None:
    """The fingerprint of the data the run started on (None: not recorded)."""
    data = (run.identity() or {}).get("data")
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sha256"), str):
        raise VislabError(
            f"{run.identity_file}: its data entry is no fingerprint (files, sha256), so the "
            "data cannot be checked; put the run's own run.json back, or train afresh with "
            "another --out"
        )
    return data


def config_changes(cfg: Config, out: Path) -> list[str]:
    """How cfg differs from the config saved in the run folder out ("key: old -> new").

    The data root, model.init and model.teacher are compared as resolved paths; RUNTIME_KEYS are not
    compared; a data root that moved is no change when it holds the same files."""
    saved = RunFolder(out).config().to_dict()
    now = cfg.to_dict()
    for c in (saved, now):
        for section, key in (("data", "root"), ("model", "init"), ("model", "teacher")):
            if c[section][key] is not None:
                c[section][key] = str(Path(c[section][key]).resolve())
        for section, key in RUNTIME_KEYS:
            c[section].pop(key, None)
    for section, key in FOUND_IN_DATA:  # left to the data: the saved value is what it found
        if now[section][key] is None:
            now[section][key] = saved[section][key]
    recorded = _recorded_data(RunFolder(out))
    old_root, new_root = saved["data"]["root"], now["data"]["root"]
    note = ""
    if old_root != new_root and new_root and recorded and Path(new_root).is_dir():
        changed = data_change(recorded, dataclasses.replace(cfg.data, root=new_root))
        if changed is None:
            print(f"--resume: data.root {old_root} -> {new_root}, the same files")
            now["data"]["root"] = old_root
        else:
            note = f" (other files: {changed})"
    return [c + note if c.startswith("data.root:") else c for c in _diff(saved, now)]


def new_identity(cfg: Config) -> dict:
    """A run's identity (RunFolder.identity) at its start: a random id and the fingerprint of
    its data (None without a data root)."""
    root = cfg.data.root
    data = data_record(cfg.data) if root and Path(root).is_dir() else None
    return {"id": uuid.uuid4().hex, "data": data}


def _check_data(cfg: Config, run: RunFolder) -> None:
    """The files under the data root are those the run started on (its recorded
    fingerprint): data added, removed or resized in place is refused, not trained on."""
    recorded = _recorded_data(run)
    root = cfg.data.root
    if recorded is None or root is None or not Path(root).is_dir():
        return  # not recorded, or no data there (training says so)
    changed = data_change(recorded, cfg.data)
    if changed is not None:
        raise VislabError(
            f"--resume: the files under {root} are not those {run.path} started training on "
            f"({changed}): its remaining epochs would train on other data than its first; "
            "put the data back as it was (or pass --data a folder that holds it), or train "
            "afresh with another --out"
        )


def _checkpoint_meta(path: Path) -> dict:
    """The vislab metadata of a checkpoint ({} when it has none); only it is read (mmap)."""
    import torch

    from vislab.infer.meta import META_KEY

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise VislabError(f"cannot read checkpoint {path}: {first}") from None
    meta = ckpt.get(META_KEY) if isinstance(ckpt, dict) else None
    return meta if isinstance(meta, dict) else {}


def _check_checkpoint_runs(run: RunFolder) -> None:
    """Every checkpoint in the folder is this run's own (one copied from another run would
    replace this run's history, or its best weights, with that one's).

    Without run.json, checkpoints that carry a run id are refused even when they all carry
    the same one: a whole checkpoints folder copied from another run agrees with itself too,
    and run.json also holds the fingerprint of the run's data, which no checkpoint does, so
    taking the id over would resume unchecked. Only checkpoints without ids (runs written
    before runs had them) resume without run.json; their run then gets one."""
    ids = {
        p.name: _checkpoint_meta(p).get("run_id") for p in sorted(run.checkpoints.glob("*.ckpt"))
    }
    identity = run.identity()
    if identity is None:
        by_run: dict[str, list[str]] = {}
        for name, theirs in ids.items():
            if theirs is not None:
                by_run.setdefault(str(theirs), []).append(name)
        if by_run:
            held = "; ".join(f"{', '.join(names)} of run {i}" for i, names in by_run.items())
            raise VislabError(
                f"--resume: {run.identity_file} is missing, yet the checkpoints in "
                f"{run.checkpoints} carry run ids ({held}): without run.json this run's own "
                "checkpoints cannot be told from another run's, nor its data checked; put the "
                "run's run.json back, or train afresh with another --out"
            )
        return
    own = identity["id"]
    names = sorted(ids, key=lambda n: n != run.last.name)  # last.ckpt first: it is resumed
    for name in (n for n in names if ids[n] != own):
        theirs = ids[name]
        if theirs is None and name != run.last.name:
            continue  # weights kept from before the run had an id
        other = f"run {theirs}" if theirs else "a run without an identity"
        raise VislabError(
            f"--resume: {run.checkpoints / name} is a checkpoint of {other}, not of {run.path} "
            f"(run {own}); put this run's own {name} back, or train it afresh with another --out"
        )


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_checkpoint_model(cfg: Config, run: RunFolder, last: Path) -> None:
    """last.ckpt holds the run's model: its metadata's task, model, model.kwargs and classes
    are the run's (a checkpoint of another architecture or data fails to load, or worse)."""
    meta = _checkpoint_meta(last)
    balance = run.class_balance()
    wanted = {"task": cfg.task, "model": cfg.model.name, "model_kwargs": dict(cfg.model.kwargs)}
    if balance is not None:  # the classes the run found in its data at its start
        wanted["classes"] = balance["classes"]
    elif cfg.declared_num_classes() is not None:
        wanted["num_classes"] = cfg.declared_num_classes()
    differ = [
        f"{key} {_shown(meta[key])} where the run has {_shown(value)}"
        for key, value in wanted.items()
        if key in meta and meta[key] != value
    ]
    if differ:
        raise VislabError(
            f"--resume: {last} is not a checkpoint of the model {run.path} trains: its "
            + "; ".join(differ)
            + "; put the run's own last.ckpt back, or train afresh with another --out"
        )


def check_resumable(run: RunFolder) -> None:
    """The folder --resume names holds a run (its config.yaml)."""
    if not run.exists():
        raise VislabError(f"--resume: {run.path} holds no run (no config.yaml)")


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
    check_resumable(run)
    changes = config_changes(cfg, run.path)
    if changes:
        raise VislabError(
            f"--resume: the config differs from the one in {run.config_file}: "
            + "; ".join(changes)
            + " (to start over, remove the folder or pick another --out)"
        )
    _check_data(cfg, run)
    _check_checkpoint_runs(run)
    if not run.last.exists():
        print(f"--resume: {run.path} holds no checkpoint yet; training from epoch 1")
        return None
    _check_checkpoint_model(cfg, run, run.last)
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
