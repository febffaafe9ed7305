"""Process-level settings: the allocator keeps freed blocks for the next mask or batch."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vislab.course.landcover import index_to_rgb

FAULTS = """
import resource, sys
from pathlib import Path
from vislab.metrics.mask_scores import _codes_of, pair_masks
from vislab.runtime import tune_allocator

applied = tune_allocator() if sys.argv[1] == "tuned" else None
pairs = pair_masks(Path(sys.argv[2]) / "gt", Path(sys.argv[2]) / "pred")
_codes_of(pairs[:2])  # the first allocations are counted by neither
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
_codes_of(pairs)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_tuned_allocator_reuses_freed_blocks_instead_of_faulting_them_in_again(tmp_path):
    """Scoring 512x512 masks: glibc's defaults fault every mask's pages in anew."""
    rng = np.random.default_rng(0)
    for sub in ("gt", "pred"):
        (tmp_path / sub).mkdir()
        for i in range(20):
            index = np.repeat(np.repeat(rng.integers(0, 7, (8, 8)), 64, 0), 64, 1)
            name = f"{i:04d}_mask.png" if sub == "gt" else f"{i:04d}.png"
            Image.fromarray(index_to_rgb(index.astype(np.uint8))).save(tmp_path / sub / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def faults(mode: str, **extra: str) -> tuple[str, int]:
        # -I: a child as bare as a user's shell starts, whatever earlier tests left in this
        # process (run after in-process commands, a plain child measured no faults at all)
        cmd = [sys.executable, "-I", "-c", FAULTS, mode, str(tmp_path)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env | extra)
        applied, count = done.stdout.split()
        return applied, int(count)

    applied, tuned = faults("tuned")
    _, default = faults("default")
    assert applied == "True"
    assert default > 20 * 192  # at least a mask's 768 KiB (192 pages) per pair
    assert tuned < default / 10
    # the user's own setting wins: nothing is applied over it
    assert faults("tuned", MALLOC_MMAP_THRESHOLD_="131072")[0] == "False"


def _reciprocals(chunk):
    return [1 / x for x in chunk]


def test_forked_map_keeps_the_order_and_brings_back_the_childrens_errors():
    from vislab.errors import VislabError
    from vislab.runtime import forked_map

    assert forked_map(_reciprocals, [[1, 2], [4], [5, 10]]) == [[1, 0.5], [0.25], [0.2, 0.1]]
    with pytest.raises(VislabError, match="ZeroDivisionError: division by zero"):
        forked_map(_reciprocals, [[1], [0], [2]])  # raised in a child
    with pytest.raises(ZeroDivisionError):
        forked_map(_reciprocals, [[1], [0]])  # raised here, after the child was waited for
