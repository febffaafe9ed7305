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
