"""Progress of a command's long steps on stderr: tqdm's bar on a terminal, else plain lines
(every step when there are few, else one each 10 seconds, and the last), so that a log shows
where a command is and how fast it goes."""

from __future__ import annotations

import sys
import time

FEW = 20  # up to this many steps, each gets its line
EVERY_S = 10.0


class Steps:
    """Counts `total` steps of `what`, counted in `units` (a plural: tiles, MiB; total None:
    not known); step() after each, with a note of what it did; close() (or a with block) at
    the end."""

    def __init__(self, total: int | None, what: str, units: str = "steps"):
        self.total, self.what, self.units = total, what, units
        self.done = 0
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm  # imported only here: a submission folder may lack it

            self.bar = tqdm(total=total, desc=what, unit=units)

    def step(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(n)
            return
        now = time.perf_counter()
        total = self.total or 0
        if total <= FEW and total or self.done >= total > 0 or now - self.last >= EVERY_S:
            self.last = now
            said = f"; {note}" if note else ""
            print(
                f"{self.what}: {self.done}/{total or '?'} {self.units} "
                f"({now - self.t0:.0f} s){said}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
