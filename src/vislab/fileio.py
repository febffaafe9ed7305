"""Atomic file writes: a reader never sees a half-written file, a crash keeps the old one."""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file of its own in the same folder (two
    writers never share one) and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    f = open(tmp, "xb")  # noqa: SIM115 (closed below; a name taken already is not ours to remove)
    try:
        with f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, an interrupt: no half file left behind
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_savefig(fig: Any, path: Path, dpi: int) -> None:
    """A matplotlib figure saved as PNG through atomic_write_bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_csv(path: Path, rows: Iterable[Sequence[Any]], newline: str = "\n") -> None:
    """Rows written by the csv module (fields with commas or quotes quoted), atomically."""
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def refuse_writing_over_inputs(
    writes: Iterable[tuple[str, Path | None]], reads: Iterable[Path | None]
) -> None:
    """The one check of every command that writes, before any work: no output (option, path)
    may be a path the command reads, through symlinks and hard links too, nor a folder that
    holds one (a folder output is written afresh or into). Callers list the files a folder
    input contributes where they write into that folder."""
    from vislab.errors import VislabError

    read = [(Path(r), Path(r).resolve()) for r in reads if r is not None]
    for option, path in writes:
        if path is None:
            continue
        target = Path(path).resolve()
        for given, r in read:
            same = target == r or (target.exists() and r.exists() and os.path.samefile(target, r))
            if same or target in r.parents:
                what = "is" if same else "holds"
                raise VislabError(
                    f"{option} {path} {what} {given}, which this command reads; write elsewhere"
                )
