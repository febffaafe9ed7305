"""`vislab report RUN... --out DIR`: the experiment's report, from run folders only.

Writes DIR/report.html (one self-contained file, figures embedded) and DIR/report.md (its
Markdown twin, figures in DIR/figures/). Every number comes from a run folder: the resolved
config, metrics.csv, and what `vislab embed` and `vislab progress` wrote there. What is missing
is shown as missing, never invented.

This module only assembles: the run record is report/run.py's, each section of a run is one
module (result, embedding, mask_progress, per_class, balance, failures), the grouping into the
user's tasks is report/problems.py's, and the page is the templates'.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes
from vislab.report.run import Run, distinct_names, read_run
from vislab.steps import Steps

if TYPE_CHECKING:
    import torch


def _sections(run: Run, figures: Path, device: torch.device | None) -> None:
    """Every section of a run, in order (later ones read the facts of earlier ones); its
    architecture traced on device."""
    from vislab.report.architectures import run_architecture
    from vislab.report.balance import balance
    from vislab.report.embedding import embedding
    from vislab.report.failures import failures
    from vislab.report.mask_progress import mask_progress
    from vislab.report.per_class import per_class
    from vislab.report.result import result

    analysis = embedding if run.task == "classification" else mask_progress
    for section in (result, analysis, per_class, balance, failures):
        run.add(section(run, figures))
    run.architecture = run_architecture(run, device)
    for key, src in list(run.figures.items()):  # every figure beside the report
        dest = figures / f"{run.name}_{key}.png"
        if src.resolve() != dest.resolve():
            atomic_write_bytes(dest, src.read_bytes())
        run.figures[key] = dest


def _context(runs: list[Run], figures: Path, device: torch.device | None) -> dict[str, Any]:
    """What the templates read: the title, the problems with their budget figures, the
    architectures drawn (the references' traced on device)."""
    from vislab.report.architectures import draw_architectures, report_architectures
    from vislab.report.budget import budget_figure
    from vislab.report.problems import problems, title
    from vislab.report.result import details

    found = problems(runs)
    references: tuple = ()
    if any(p.course for p in found):
        from vislab.course.report_roles import REFERENCE_ARCHITECTURES as references
    for p in found:
        p.budget = budget_figure(p.runs, p.task, figures / f"budget_{p.key}.png")
    architectures = report_architectures(runs, references, device)
    draw_architectures(architectures, figures)
    return {
        "title": title(found),
        "problems": found,
        "architectures": architectures,
        "details": details,
    }


def markdown_text(value: Any) -> Any:
    """A value as Markdown text: HTML's special characters as entities (a viewer shows them,
    never runs them) and table pipes escaped. Every {{ }} of the Markdown templates passes
    here; the HTML templates are autoescaped."""
    if not isinstance(value, str):
        return value
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        value = value.replace(raw, escaped)
    return value


def content_policy(nonce: str | None) -> str:
    """The Content-Security-Policy of the HTML report: nothing loads but its own embedded
    images and styles, and only the script that carries nonce runs (none when None: the
    printed version)."""
    scripts = f"'nonce-{nonce}'" if nonce else "'none'"
    return f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {scripts}"


def _render(context: dict[str, Any], out: Path, pdf: Path | None, browser: str | None) -> None:
    import jinja2

    from vislab.report.pdf import print_pdf

    def env(**options) -> jinja2.Environment:
        return jinja2.Environment(
            loader=jinja2.PackageLoader("vislab.report", "templates"),
            trim_blocks=True,
            lstrip_blocks=True,
            **options,
        )

    def embed_png(path: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()

    html = env(autoescape=True).get_template("report.html.j2")
    md = env(finalize=markdown_text).get_template("report.md.j2")
    md_text = md.render(**context, src=lambda p: f"figures/{Path(p).name}")
    nonce = secrets.token_urlsafe(16)
    page = html.render(**context, src=embed_png, policy=content_policy(nonce), nonce=nonce)
    atomic_write_bytes(out / "report.html", page.encode())
    atomic_write_bytes(out / "report.md", md_text.encode())
    if browser is not None:
        printed = out / ".report.print.html"  # the tables that the screen folds, unfolded
        page = html.render(**context, src=embed_png, policy=content_policy(None), unfold=True)
        atomic_write_bytes(printed, page.encode())
        try:
            print_pdf(printed, pdf, browser)
        finally:
            printed.unlink(missing_ok=True)


def build(
    runs: list[Path], out: Path, pdf: Path | None = None, device: torch.device | None = None
) -> Path:
    """Write report.html and report.md into out, and the PDF to pdf when given (printed by a
    headless Chromium, every layer table unfolded); returns the HTML path. The architectures
    are traced on device (default the CPU)."""
    from vislab.report.pdf import find_browser

    if not runs:
        raise VislabError("give at least one run folder")
    browser = find_browser() if pdf is not None else None  # before the work, not after
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    loaded = distinct_names([read_run(r) for r in runs])
    # each run's sections, then the figures across runs, then the pages (and the PDF)
    steps = Steps(len(loaded) + 2, "report")
    for run in loaded:
        _sections(run, figures, device)
        steps.step(note=f"run {run.name}")
    context = _context(loaded, figures, device)
    steps.step(note="budget figures and architectures")
    _render(context, out, pdf, browser)
    steps.step(note="report.html, report.md" + (f", {pdf}" if pdf else ""))
    steps.close()
    return out / "report.html"
