"""Process-level speed settings shared by training, prediction and benchmarks."""

from __future__ import annotations

import os


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

    n = requested if requested else free_cores()
    torch.set_num_threads(n)
    return n
