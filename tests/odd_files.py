"""Files that Pillow and the zip module do not write: PNGs of any bit depth and colour type,
or whose header claims any size; and FIFOs, which code that opens one (it must not) is sent an
end of file after a moment instead of waiting for a writer forever, so that such a test fails
with the wrong message rather than hangs."""

from __future__ import annotations

import errno
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _release(paths: list[Path], stop: threading.Event, seconds: float) -> None:
    """Open each FIFO for writing whenever a reader waits on it (ENXIO: none does), and close
    it at once: the reader gets an end of file."""
    end = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < end:
        for path in paths:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as e:
                if e.errno not in (errno.ENXIO, errno.ENOENT):
                    raise
        time.sleep(0.05)


@contextmanager
def fifos(*paths: Path, seconds: float = 60) -> Iterator[list[Path]]:
    """A FIFO (named pipe) at each path while the block runs, never left blocking a reader."""
    made = [Path(p) for p in paths]
    for p in made:
        p.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(p)
    stop = threading.Event()
    guard = threading.Thread(target=_release, args=(made, stop, seconds), daemon=True)
    guard.start()
    try:
        yield made
    finally:
        stop.set()
        guard.join()


CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type: grey, RGB, grey + alpha, RGBA


def raw_png(path: Path, width: int, height: int, bits: int = 8, colour: int = 2) -> Path:
    """A PNG of that header (bit depth, colour type); its pixels are zeros, or none at all
    past 4096 x 4096 (a header that claims more than the file holds)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)
    row = bytes(1 + width * CHANNELS[colour] * bits // 8)
    pixels = zlib.compress(row * height) if width * height <= 4096 * 4096 else b""
    body = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path
