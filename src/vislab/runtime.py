"""Process-level speed settings: torch threads, the C allocator, work over forked processes."""

from __future__ import annotations

import ctypes
import os

from vislab.errors import VislabError

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 1 << 30


def tune_allocator() -> bool:
    """Keep freed blocks of up to 32 MiB in the heap, and trim it only above 1 GiB, as
    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 would. glibc's defaults
    hand big blocks back to the system on free, so every batch's tensors and every decoded
    mask fault their pages in again: up to 1.4x of torch's throughput, and most of the system
    time of scoring masks. Returns whether it applied: not on another libc, nor where the
    user set those variables."""
    if {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def free_cores() -> int:
    """Cores not busy right now (by the 1-minute load average), at least one.

    On a shared 2-core machine two torch threads run 5x slower than one when the other core is
    busy, so the default thread count follows the cores that are actually free.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = int(os.getloadavg()[0] + 0.5) if hasattr(os, "getloadavg") else 0
    return max(1, (cores or 1) - busy)


def set_threads(requested: int | None) -> int:
    """Set torch's intra-op thread count (requested, or the free cores) and return it."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if requested and cores and requested > cores:  # thousands of threads crash the process
        from vislab.errors import VislabError

        raise VislabError(
            f"config key trainer.threads: {requested} is more than the {cores} core(s) this "
            "process may use"
        )
    n = requested if requested else free_cores()
    torch.set_num_threads(n)
    return n


def forked_map(fn, chunks: list) -> list:
    """[fn(chunk) for chunk in chunks], the last chunk here and each other one in a forked
    child that inherits everything loaded (no re-import, no pool to start) and sends back its
    result, or the exception it raised, pickled through a pipe."""
    import pickle

    children = []
    try:
        for chunk in chunks[:-1]:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: compute, send, leave without running the parent's exits
                try:
                    os.close(read)
                    try:
                        message = pickle.dumps((True, fn(chunk)))
                    except VislabError as e:
                        message = pickle.dumps((False, e))
                    except BaseException as e:  # sent as text: not every exception pickles
                        message = pickle.dumps((False, VislabError(f"{type(e).__name__}: {e}")))
                    with os.fdopen(write, "wb") as f:
                        f.write(message)
                finally:
                    os._exit(0)
            os.close(write)
            children.append((pid, read))
        last = fn(chunks[-1])
    finally:
        messages = []
        for pid, read in children:
            with os.fdopen(read, "rb") as f:
                data = f.read()
            os.waitpid(pid, 0)
            messages.append(pickle.loads(data) if data else (False, VislabError("a worker died")))
    for ok, value in messages:
        if not ok:
            raise value
    return [value for _, value in messages] + [last]
