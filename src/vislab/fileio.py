"""Atomic file writes: a reader never sees a half-written file, a crash keeps the old one.
Scratch names of each process's own, cleared when their process is gone; folders held by one
command at a time; no output written over an input."""

from __future__ import annotations

import glob
import hashlib
import io
import os
import re
import secrets
import shutil
import socket
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

SCRATCH_KINDS = ("tmp", "partial", "new", "old")
# .NAME.PID.RANDOM.KIND, RANDOM's first 4 hex digits a tag of the host whose PID it is
_SCRATCH = re.compile(rf"\.(.+)\.(\d+)\.([\da-f]{{4}})[\da-f]{{4}}\.(?:{'|'.join(SCRATCH_KINDS)})")
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]
_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def special_file(path: Path) -> str | None:
    """What path is when it is neither a regular file nor a folder (reading a FIFO or a
    device can block forever or never end), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return next((what for test, what in _SPECIAL if test(mode)), None)


def require_file(path: Path, what: str = "file") -> None:
    """A one-line error naming the real cause when path is not a regular file to read."""
    from vislab.errors import VislabError

    special = special_file(path)
    if special:
        raise VislabError(f"{path} is {special}, not a {what}: vislab reads regular files only")
    if Path(path).is_dir():
        raise VislabError(f"{path} is a folder, not a {what}")
    if not Path(path).is_file():
        raise VislabError(f"{what} not found: {path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clear_leftovers(target: Path) -> None:
    """Remove the scratch files and folders (scratch_path) of target that processes which
    no longer run left behind (killed by SIGKILL or a power cut); a live one's stay."""
    target = Path(target)
    if target.parent.is_dir():
        _clear(target.parent.glob(f".{glob.escape(target.name)}.*"), target.name)


def clear_folder_leftovers(folder: Path) -> None:
    """clear_leftovers for every file of folder (one a single process writes, such as a run
    folder under its lock)."""
    if Path(folder).is_dir():
        _clear(Path(folder).glob(".*"))


_CLEARED = set()  # the folders this process has cleared of dead processes' scratch names


def clear_folder_once(folder: Path) -> None:
    """clear_folder_leftovers the first time this process writes into folder: one listing a
    folder, not one a file written (a command that writes thousands of files into one folder
    lists it once)."""
    key = os.path.abspath(folder)
    if key not in _CLEARED and os.path.isdir(key):
        _CLEARED.add(key)
        clear_folder_leftovers(Path(key))


def _clear(candidates: Iterable[Path], name: str | None = None) -> None:
    """Remove the scratch names (of name's, or of any name) of this host's dead processes."""
    for found in candidates:
        m = _SCRATCH.fullmatch(found.name)
        if m and name in (None, m[1]) and m[3] == _HOST and not _alive(int(m[2])):
            if found.is_dir() and not found.is_symlink():
                shutil.rmtree(found, ignore_errors=True)
            else:
                found.unlink(missing_ok=True)


def scratch_name(target: Path, kind: str) -> Path:
    """A scratch name of this process's own beside target: .NAME.PID.RANDOM.KIND, RANDOM
    the host's tag and 4 random hex digits (two processes, or two calls of one, never share
    one)."""
    assert kind in SCRATCH_KINDS, kind
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{_HOST}{secrets.token_hex(2)}.{kind}")


def scratch_path(target: Path, kind: str) -> Path:
    """scratch_name, after the leftovers of dead processes beside target are removed (a
    listing of the folder each call: for scratch folders; a file written uses
    clear_folder_once)."""
    clear_leftovers(target)
    return scratch_name(target, kind)


def _lock_holder(folder: Path) -> int | None:
    """The process that holds folder's flock, from the kernel's table (None where unknown)."""
    try:
        st = os.stat(folder)
        key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks") as f:
            for fields in (line.split() for line in f):
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == key:
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


def _holder(folder: Path) -> str:
    """Who holds folder, where the kernel's lock table tells, as " (process PID, writing
    PATH)": the output from that process's scratch names, in folder or beside it; "" where
    the table does not tell (any live process's scratch names may be another command's)."""
    pid = _lock_holder(folder)
    if pid is None:
        return ""
    inside = [(folder, p) for p in folder.glob(".*")]
    beside = [(folder.parent, p) for p in folder.parent.glob(f".{glob.escape(folder.name)}.*")]
    for base, found in inside + beside:
        m = _SCRATCH.fullmatch(found.name)
        if m and int(m[2]) == pid and m[3] == _HOST:
            writing = base / m[1]
            return f" (process {pid}{'' if writing == folder else f', writing {writing}'})"
    return f" (process {pid})"


@contextmanager
def exclusive(folder: Path, option: str, output: Path | None = None) -> Iterator[None]:
    """Hold folder for this command alone while the block runs: a second vislab command that
    writes the same folder is refused at once, naming the process that holds it and what it
    writes where the system tells (the kernel's flock, released by a process that dies; where
    the file system cannot lock, unlocked). output: what this command writes inside folder,
    when folder is not the output itself (a folder swapped whole is written under a lock on
    the folder that holds it)."""
    import fcntl

    from vislab.errors import VislabError

    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = (
                f"{output}: its folder {folder} is held" if output else f"{folder} is being written"
            )
            raise VislabError(
                f"{option} {held} by another vislab command{_holder(Path(folder))}; wait for "
                "it to end or write elsewhere"
            ) from None
        except OSError:  # cannot lock here (NFS: EBADF on a folder; ENOLCK, EOPNOTSUPP)
            pass  # unlocked; still no half-written file: each writes scratch names of its own
        yield
    finally:
        os.close(fd)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM that come inside are acted on when the block ends, so that a few
    renames that belong together (the files of one command, a folder swapped) are not cut
    in two. In the main thread only, where Python runs its signal handlers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []

    def hold(signum, frame):
        caught.append((signum, frame))

    before = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        for signum, frame in caught[:1]:
            handler = before[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler != signal.SIG_IGN:  # the default action, as an exception: finally runs
                raise KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)


@contextmanager
def staged_into(folder: Path, option: str) -> Iterator[Path]:
    """A scratch folder of this process's own beside folder, whose files move into folder
    only when the block ends without an error: a failure (a bad input found half-way, a full
    disk, Ctrl-C) leaves folder as it was (a folder made for it removed again). folder is held
    for this command alone meanwhile (exclusive)."""
    with _staged(Path(folder), option, None, Path(folder)) as scratch:
        yield scratch


@contextmanager
def staged_beside(target: Path, option: str) -> Iterator[Path]:
    """staged_into for the files of one command that lie beside target in its folder (a
    figure and its numbers): they land together, or not at all. The folder is held for this
    command alone meanwhile (exclusive)."""
    target = Path(target)
    with _staged(target.parent, option, target, target) as scratch:
        yield scratch


@contextmanager
def _staged(folder: Path, option: str, output: Path | None, beside: Path) -> Iterator[Path]:
    """A scratch folder beside `beside`, its files moved into folder (held meanwhile) when
    the block ends without an error, the moves not cut in two by a signal; removed in any
    case, and folder too when it was made here and is still empty."""
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder, option, output):
        try:
            scratch = scratch_path(beside, "partial")
            scratch.mkdir()
            try:
                yield scratch
                with uninterrupted():
                    for f in sorted(scratch.iterdir()):
                        os.replace(f, folder / f.name)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        except BaseException:
            if made:
                with suppress(OSError):  # not empty: someone else's files now
                    folder.rmdir()
            raise


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """An OSError inside that names no file (write() on a full disk: "No space left on
    device") names path."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file of its own in the same folder (two
    writers never share one) and a rename. The temporary files that killed processes left
    in that folder are removed the first time this process writes there (clear_folder_once)."""
    path = Path(path)
    clear_folder_once(path.parent)
    tmp = scratch_name(path, "tmp")  # removed on any exception, SIGTERM included
    f = open(tmp, "xb")  # noqa: SIM115 (closed below; a name taken already is not ours to remove)
    try:
        with naming(path), f:
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
    writes: Iterable[tuple[str, Path | None]],
    reads: Iterable[Path | None],
    image_folders: Iterable[Path | None] = (),
) -> None:
    """The one check of every command that writes, before any work: no output (option, path)
    may be a path the command reads, through symlinks and hard links too, nor a folder that
    holds one (a folder output is written afresh or into). Callers list the files a folder
    input contributes where they write into that folder. No image and no folder may be
    written into (or under) image_folders, the folders the command reads images or masks
    from: the next command would read it as data (a CSV or JSON beside the images may)."""
    from vislab.data.images import IMAGE_SUFFIXES
    from vislab.errors import VislabError

    read = [(Path(r), Path(r).resolve()) for r in reads if r is not None]
    folders = [(Path(f), Path(f).resolve()) for f in image_folders if f and Path(f).is_dir()]
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
        as_data = target.suffix.lower() in IMAGE_SUFFIXES or not target.suffix  # or a folder
        for given, f in folders:
            if f == target or (f in target.parents and as_data):
                raise VislabError(
                    f"{option} {path} is in {given}, a folder this command reads images from "
                    "(what is written there would be read as data next); write elsewhere"
                )
