"""The report as a PDF (the course hands in hw1_<ID>.pdf): its HTML printed by a headless
Chromium, the browser that lays out the HTML the reader sees; print rules in the HTML keep
each figure and table whole on a page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from vislab.errors import VislabError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 300


def find_browser() -> str:
    """The first Chromium on PATH; an error that says how to install one when there is none."""
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    raise VislabError(
        "--pdf prints the report with a headless Chromium, and none is on PATH "
        f"(looked for {', '.join(BROWSERS)}); install one, e.g. `apt-get install chromium`"
    )


def print_pdf(html: Path, pdf: Path, browser: str) -> Path:
    """Print html to pdf with browser (find_browser); the PDF appears whole or not at all. What
    the page may load and run is its own policy's: the report's printed version allows its
    embedded images and styles, no script (build.content_policy)."""
    pdf = Path(pdf).resolve()
    pdf.parent.mkdir(parents=True, exist_ok=True)
    partial = pdf.with_name(pdf.name + ".partial")
    partial.unlink(missing_ok=True)
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",  # as root (containers, CI) Chromium refuses to start with its sandbox
        "--disable-gpu",
        "--no-pdf-header-footer",
        f"--print-to-pdf={partial}",
        Path(html).resolve().as_uri(),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        raise VislabError(f"{browser} did not print {html} within {TIMEOUT_S} s") from None
    if not partial.is_file() or partial.read_bytes()[:5] != b"%PDF-":
        partial.unlink(missing_ok=True)
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise VislabError(f"{browser} printed no PDF of {html} (exit {done.returncode}): {tail}")
    partial.replace(pdf)
    return pdf
