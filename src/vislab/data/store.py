"""Where a decoded set lives (`data.store`): in this process's memory, or in a cache on disk of
uint8 arrays that every process maps (memory-mapped .npy files).

A set is decoded item by item into arrays allocated once (no stacking copy): in memory, or
into the cache's files, chunk by chunk, so that a set larger than memory decodes and trains.
The cache is written once per set and decoding settings, keyed by the files' resolved paths,
sizes and modification times and the settings; a changed file makes a new key. One process
builds it (a lock beside it; the others, such as DDP ranks and data workers, wait and map the
same pages); an interrupted build leaves nothing that is read later.

auto: the disk when the set, times the processes that would each hold it, passes half of the
memory available now, else memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence, Tuple

import numpy as np

from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, scratch_path

STORES = ("auto", "memory", "disk")
FORMAT = 1  # of the cache's files: a new format never reads an old one
CHUNK = 64  # items decoded between two writes


def cache_root() -> Path:
    """$VISLAB_CACHE, else ~/.cache/vislab: the decoded sets are in its decoded/."""
    base = os.environ.get("VISLAB_CACHE") or Path.home() / ".cache" / "vislab"
    return Path(base) / "decoded"


def set_key(files: Sequence[Path], settings: dict) -> str:
    """The cache key of a set: its files (resolved path, size, modification time) in order,
    and the settings its items are decoded with."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, **settings}, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or the physical memory where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


Decode = Callable[[int], Tuple[np.ndarray, ...]]  # typing's: the course's Python 3.8


def decoded_arrays(
    n: int,
    decode: Decode,
    names: tuple[str, ...],
    *,
    store: str = "memory",
    key: Callable[[], str] | None = None,
    processes: int = 1,
    mismatch: Callable[[int, tuple, tuple], str] | None = None,
) -> list[np.ndarray]:
    """The arrays (one per name) of n items: decode(i) gives item i's parts, each stored at
    index i of its array. store: memory, disk (key() names the set in the cache) or auto.
    mismatch(i, shape, first_shape): the error of an item whose parts differ in shape from
    item 0's."""
    if store not in STORES:
        raise VislabError(f"config key data.store: {store!r} is not one of {', '.join(STORES)}")
    folder = cache_root() / key() if key is not None and store != "memory" else None
    if folder is not None:
        found = _entry(folder, n, names)
        if found is not None:
            return found  # built before: nothing decoded
    first = decode(0)
    if store == "auto":
        size = n * sum(part.nbytes for part in first)
        store = "disk" if size * processes > available_memory() // 2 else "memory"
    if store == "memory":
        arrays = [np.empty((n, *p.shape), dtype=p.dtype) for p in first]
        _fill(arrays, first, n, decode, mismatch)
        return arrays
    if folder is None:
        raise VislabError("data.store disk: this set cannot be cached on disk")
    return _cached(folder, n, first, decode, names, mismatch)


def _fill(arrays: list[np.ndarray], first, n: int, decode: Decode, mismatch) -> None:
    """Decode items 1..n-1 into arrays (item 0 given as first), a chunk at a time over two
    threads (decoding releases the GIL)."""
    for a, part in zip(arrays, first, strict=True):
        a[0] = part
    shapes = tuple(p.shape for p in first)
    with ThreadPoolExecutor(2) as pool:
        for start in range(1, n, CHUNK):
            indices = range(start, min(start + CHUNK, n))
            for i, item in zip(indices, pool.map(decode, indices), strict=True):
                got = tuple(p.shape for p in item)
                if got != shapes:
                    raise VislabError(mismatch(i, got, shapes) if mismatch else "items differ")
                for a, part in zip(arrays, item, strict=True):
                    a[i] = part


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold path's lock file (blocking): one process builds a cache entry, the others wait."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise VislabError(
            f"data.store disk: cannot write the cache in {path.parent} ({e.strerror}); set "
            "VISLAB_CACHE to a writable folder, or data.store=memory"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _entry(folder: Path, n: int, names: tuple[str, ...]) -> list[np.ndarray] | None:
    """The arrays of a complete entry, mapped copy-on-write (torch takes them as they are,
    and nothing is written back); None where there is none, or where it is damaged (a file
    cut short or removed: it is rebuilt)."""
    if not (folder / "complete.json").is_file():
        return None
    try:
        arrays = [np.load(folder / f"{name}.npy", mmap_mode="c") for name in names]
    except (OSError, ValueError):
        return None
    return arrays if all(len(a) == n for a in arrays) else None


def _cached(folder: Path, n: int, first, decode: Decode, names, mismatch) -> list[np.ndarray]:
    with _locked(folder):
        found = _entry(folder, n, names)  # built by another process while this one waited
        if found is not None:
            return found
        if folder.exists():
            print(f"data.store: rebuilding the damaged cache entry {folder}", file=sys.stderr)
            shutil.rmtree(folder)
        need = n * sum(p.nbytes for p in first)
        free = shutil.disk_usage(folder.parent).free
        if need > free:
            raise VislabError(
                f"data.store disk: the decoded set needs {need / 2**30:.2f} GiB and "
                f"{folder.parent} has {free / 2**30:.2f} GiB free (set VISLAB_CACHE to a "
                "larger disk, or data.store=memory)"
            )
        scratch = scratch_path(folder, "partial")
        scratch.mkdir()
        try:
            arrays = [
                np.lib.format.open_memmap(
                    scratch / f"{name}.npy", mode="w+", dtype=p.dtype, shape=(n, *p.shape)
                )
                for name, p in zip(names, first, strict=True)
            ]
            _fill(arrays, first, n, decode, mismatch)
            for a in arrays:
                a.flush()
            del arrays
            info = {"format": FORMAT, "items": n, "arrays": list(names)}
            atomic_write_bytes(scratch / "complete.json", json.dumps(info).encode())
            os.replace(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    found = _entry(folder, n, names)
    if found is None:
        raise VislabError(f"data.store disk: the cache entry {folder} cannot be read back")
    return found
