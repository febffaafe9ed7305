"""The run folder: what `vislab train` writes and everything after it reads.

<run>/config.yaml                     the resolved config (data root and model.init absolute)
<run>/dataset.json                    segmentation: the data set spec the run trained on
<run>/metrics.csv                     one row per epoch
<run>/checkpoints/best.ckpt           best val accuracy or mIoU (Lightning checkpoint, plain dict)
<run>/checkpoints/last.ckpt           end of the latest epoch; --resume continues from it
<run>/checkpoints/epoch_NNN.ckpt      weights-only snapshots (default: first, middle, last epoch)
<run>/embed/                          `vislab embed`: figures, coords.npz, metrics.json
<run>/progress.png, progress.json     `vislab progress`
<run>/val_pred.csv or val_masks/, val_eval/   `vislab reproduce`'s scoring of best.ckpt
<run>/teacher_targets.pt              model.teacher's log-probabilities of the train images
<run>/.lock                           held by the process that trains into the folder

No torch and no Lightning here: analysis and the report read runs through this.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vislab.config import Config, config_from_dict
from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, clear_folder_leftovers, special_file
from vislab.yamlfile import read_yaml_mapping

if TYPE_CHECKING:
    from vislab.data.spec import DatasetSpec


def _present(path: Path) -> bool:
    """Whether a file of the run is there; a FIFO or a device of its name (reading one can
    block forever) is refused, named, not taken for a missing file."""
    special = special_file(path)
    if special:
        raise VislabError(
            f"{path} is {special}, not a file of the run: vislab reads regular files only "
            "(remove it, or write the run afresh)"
        )
    return path.is_file()


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def teacher_targets(self) -> Path:
        return self.path / "teacher_targets.pt"

    def snapshot(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:03d}.ckpt"

    @property
    def embed_dir(self) -> Path:
        return self.path / "embed"

    @property
    def progress_figure(self) -> Path:
        return self.path / "progress.png"

    @property
    def val_pred(self) -> Path:
        """best.ckpt's predictions of the validation images (classification)."""
        return self.path / "val_pred.csv"

    @property
    def val_masks(self) -> Path:
        """best.ckpt's predicted masks of the validation tiles (segmentation)."""
        return self.path / "val_masks"

    @property
    def eval_dir(self) -> Path:
        return self.path / "val_eval"

    def exists(self) -> bool:
        return _present(self.config_file)

    def require(self) -> RunFolder:
        """The run folder, its files checked: an error when it is none (no config.yaml), or
        when a file of its layout (checkpoints/ and embed/ too) is a FIFO or a device."""
        if not self.exists():
            raise VislabError(f"{self.path} is not a run folder (no config.yaml)")
        folders = [d for d in (self.path, self.checkpoints, self.embed_dir) if d.is_dir()]
        for p in (p for folder in folders for p in folder.iterdir()):
            _present(p)
        return self

    def config(self) -> Config:
        """The typed config the run was trained with."""
        tree = read_yaml_mapping(self.require().config_file)
        try:
            return config_from_dict(tree)
        except VislabError as e:
            raise VislabError(f"{self.config_file}: {e}") from None

    def val_folder(self) -> Path:
        """The validation images (tiles) the run was trained against, where its analyses
        read them unless given another folder."""
        d = self.config().data
        return d.resolve(d.val)

    def write_config(self, cfg: Config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        atomic_write_bytes(self.config_file, text.encode())

    @property
    def identity_file(self) -> Path:
        return self.path / "run.json"

    def identity(self) -> dict | None:
        """The run's identity, written at its start: {"id": a random hex string that every
        checkpoint of the run carries, "data": the fingerprint of the data it trains on
        (train.resume)}; None for runs written before runs had one."""
        if not _present(self.identity_file):
            return None
        try:
            found = json.loads(self.identity_file.read_text())
        except ValueError:
            raise VislabError(f"{self.identity_file}: not JSON") from None
        if not isinstance(found, dict) or not isinstance(found.get("id"), str):
            raise VislabError(f"{self.identity_file}: holds no run id")
        return found

    def write_identity(self, identity: dict) -> None:
        atomic_write_bytes(self.identity_file, (json.dumps(identity) + "\n").encode())

    @property
    def dataset_file(self) -> Path:
        return self.path / "dataset.json"

    def spec(self) -> DatasetSpec:
        """The data set spec a segmentation run trained on (dataset.json); runs written before
        data sets declared their own are the course's land-cover set."""
        from vislab.data.spec import DatasetSpec, builtin_spec  # numpy: not for every reader

        if not _present(self.dataset_file):
            task = self.config().task
            if task != "segmentation":
                raise VislabError(f"{self.path} is a {task} run: it has no mask spec")
            return builtin_spec("landcover")
        try:
            stored = json.loads(self.dataset_file.read_text())
        except ValueError as e:
            raise VislabError(f"{self.dataset_file} is not JSON ({e})") from None
        return DatasetSpec.from_dict(stored, str(self.dataset_file))

    def write_spec(self, spec: DatasetSpec) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.dataset_file, json.dumps(spec.to_dict(), indent=1).encode())

    @property
    def class_balance_file(self) -> Path:
        return self.path / "class_balance.json"

    def class_balance(self) -> dict | None:
        """What training counted of each class in its sets (None for runs that lack it)."""
        if not _present(self.class_balance_file):
            return None
        try:
            counted = json.loads(self.class_balance_file.read_text())
        except ValueError as e:
            raise VislabError(f"{self.class_balance_file} is not JSON ({e})") from None
        path = self.class_balance_file
        if not isinstance(counted, dict) or not {"classes", "train", "val", "unit"} <= set(counted):
            raise VislabError(
                f"{path} lacks classes, train, val or unit (not written by vislab train)"
            )
        names = counted["classes"]
        if not isinstance(names, list) or not all(
            isinstance(c, str | int) and not isinstance(c, bool) for c in names
        ):
            raise VislabError(f"{path}: classes is {_shown(names)}, not a list of class names")
        for part in ("train", "val"):
            counts = counted[part]
            if not isinstance(counts, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts
            ):
                raise VislabError(f"{path}: {part} is {_shown(counts)}, not a list of whole counts")
            if len(counts) != len(names):
                raise VislabError(
                    f"{path}: {part} holds {len(counts)} counts for {len(names)} classes"
                )
        if not isinstance(counted["unit"], str):
            raise VislabError(f"{path}: unit is {_shown(counted['unit'])}, not images or pixels")
        return counted

    def write_class_balance(self, balance: dict) -> None:
        atomic_write_bytes(self.class_balance_file, json.dumps(balance, indent=1).encode())

    def metrics(self) -> list[dict[str, str]]:
        """metrics.csv's rows ([] before the first epoch ends), each cell a number (or empty),
        the epoch a whole one. A damaged file (cut short, not UTF-8, a row longer than the
        header, a cell that is not a number) is a one-line error naming the line, not fewer
        rows."""
        path = self.metrics_file
        if not _present(path):
            return []
        raw = path.read_bytes()
        try:
            text = raw.decode()
        except UnicodeDecodeError as e:
            raise VislabError(
                f"{path} is not UTF-8 text: byte {raw[e.start]:#04x} at offset {e.start} "
                "(training writes plain numbers: the file was damaged after it was written)"
            ) from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, [])
            for fields in reader:
                if len(fields) > len(header):
                    raise VislabError(
                        f"{path} line {reader.line_num} has {len(fields)} fields, more than the "
                        f"{len(header)} columns of its header (training writes one value per "
                        "column)"
                    )
        except csv.Error as e:
            raise VislabError(f"{path} line {reader.line_num}: not CSV ({e})") from None
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        short = [i for i, r in enumerate(rows, start=2) if None in r.values()]
        if (text and not text.endswith("\n")) or short:
            line = short[0] if short else len(text.splitlines())
            raise VislabError(
                f"{path} is cut short at line {line} (training writes whole rows: the file was "
                "damaged after it was written)"
            )
        if rows and "epoch" not in header:
            raise VislabError(f"{path} has no epoch column (its header: {','.join(header)})")
        for line, row in enumerate(rows, start=2):
            for key, value in row.items():
                try:
                    ok = value in ("", "nan") or (
                        int(value) > 0 if key == "epoch" else not math.isinf(float(value))
                    )
                except ValueError:
                    ok = False
                if not ok or (key == "epoch" and value in ("", "nan")):
                    what = "a whole epoch number" if key == "epoch" else "a number"
                    raise VislabError(f"{path} line {line}: {key} is {_shown(value)}, not {what}")
        return rows

    def write_metrics(self, rows: list[dict[str, float]]) -> None:
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(self.metrics_file, buf.getvalue().encode())

    def snapshots(self) -> list[Path]:
        return sorted(self.checkpoints.glob("epoch_*.ckpt"))

    def inputs(self) -> list[Path]:
        """The files the commands that analyse a run read from it: its record (config,
        data set, metrics, class balance) and every checkpoint."""
        record = [self.config_file, self.dataset_file, self.metrics_file, self.class_balance_file]
        return [f for f in record if _present(f)] + sorted(self.checkpoints.glob("*.ckpt"))

    def pick_snapshots(self) -> list[Path]:
        """Early, middle and final snapshot (fewer when the run kept fewer)."""
        snaps = self.snapshots()
        if not snaps:
            raise VislabError(f"{self.path} has no snapshots (checkpoints/epoch_NNN.ckpt)")
        picks = [snaps[0], snaps[len(snaps) // 2], snaps[-1]]
        return list(dict.fromkeys(picks))  # drop repeats, keep order

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for one training process; a second is refused at once. The lock is
        the kernel's (flock): a process that dies releases it. The scratch files a killed
        process left are removed once the lock is held; a folder made here and left with
        nothing but the lock (a run refused before it wrote anything) is removed."""
        made = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / ".lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        held = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise VislabError(
                    f"{self.path} is in use by another vislab train (process {holder}); wait "
                    "for it to end or pick another --out"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            for folder in (self.path, self.checkpoints):  # a killed run's half-written files
                clear_folder_leftovers(folder)
            yield
        finally:
            if held and made and [p.name for p in self.path.iterdir()] == [lock.name]:
                lock.unlink()
                self.path.rmdir()
            os.close(fd)  # closing releases the lock


def _shown(value: Any, limit: int = 60) -> str:
    """A value as the file holds it, on one short line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
