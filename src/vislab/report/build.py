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
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, exclusive, scratch_name, scratch_path
from vislab.report.run import Run, distinct_names, read_run
from vislab.steps import Steps

if TYPE_CHECKING:
    import torch

    from vislab.report.ensembles import Ensemble


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


def _context(
    runs: list[Run], ensembles: list[Ensemble], figures: Path, device: torch.device | None
) -> dict[str, Any]:
    """What the templates read: the title, the problems with their ensembles and budget
    figures, the architectures drawn (the references' traced on device)."""
    from vislab.report.architectures import draw_architectures, report_architectures
    from vislab.report.budget import budget_figure
    from vislab.report.ensembles import ensemble_facts
    from vislab.report.problems import problems, title
    from vislab.report.result import details

    found = problems(runs)
    references: tuple = ()
    if any(p.course for p in found):
        from vislab.course.report_roles import REFERENCE_ARCHITECTURES as references
    for p in found:
        # an ensemble's row is in the table of its first member's problem
        p.ensembles = [e for e in ensembles if any(e.members[0] is r for r in p.runs)]
        for e in p.ensembles:
            ensemble_facts(e, p.task)
        path = figures / f"budget_{p.key}.png"
        p.budget = budget_figure(p.runs, p.task, path, p.ensembles)
    architectures = report_architectures(runs, references, device)
    draw_architectures(architectures, figures)
    return {
        "title": title(found),
        "problems": found,
        "architectures": architectures,
        "details": details,
    }


class MarkdownLink(str):
    """A link destination the Markdown templates write as it is (a figure's %-encoded path)."""


_MARKDOWN_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+!|~]")
_MARKDOWN_LEADING = re.compile(r"^(\s*(?:\d{1,9}(?=[.)](?:\s|$)))?)([-=.)])")
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(:)(?=//)|(?<=\bwww)(\.)")


def markdown_text(value: Any) -> Any:
    """A value as Markdown that shows it as literal text: HTML's special characters as
    entities (a viewer shows them, never runs them), Markdown's inline marks (links, images,
    emphasis, code, table pipes) backslash-escaped, a list or heading mark at its start
    escaped, a URL's :// and www. broken so that no viewer links them, line breaks as
    spaces. Every {{ }} of the Markdown templates passes here; the HTML templates are
    autoescaped."""
    if isinstance(value, MarkdownLink) or not isinstance(value, str):
        return value
    value = " ".join(value.splitlines())
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        value = value.replace(raw, escaped)
    value = _MARKDOWN_SPECIAL.sub(r"\\\g<0>", value)
    value = _AUTOLINK.sub(lambda m: "\\" + m.group(0), value)
    return _MARKDOWN_LEADING.sub(r"\1\\\2", value, count=1)


def markdown_src(path: Path) -> MarkdownLink:
    """The Markdown link of a figure beside report.md: figures/NAME, %-encoded (a name may hold
    spaces, brackets or parentheses)."""
    return MarkdownLink("figures/" + quote(Path(path).name))


def content_policy(nonce: str | None) -> str:
    """The Content-Security-Policy of the HTML report: nothing loads but its own embedded
    images and styles, and only the script that carries nonce runs (none when None: the
    printed version)."""
    scripts = f"'nonce-{nonce}'" if nonce else "'none'"
    return f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {scripts}"


def _render(
    context: dict[str, Any], scratch: Path, pdf: Path | None, browser: str | None
) -> dict[str, bytes]:
    """The pages (report.html, report.md) of context, its figures read from scratch; the PDF
    printed to pdf when browser is given."""
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
    md_text = md.render(**context, src=markdown_src)
    nonce = secrets.token_urlsafe(16)
    page = html.render(**context, src=embed_png, policy=content_policy(nonce), nonce=nonce)
    if browser is not None:
        printed = scratch / "report.print.html"  # the tables that the screen folds, unfolded
        unfolded = html.render(**context, src=embed_png, policy=content_policy(None), unfold=True)
        atomic_write_bytes(printed, unfolded.encode())
        try:
            print_pdf(printed, pdf, browser)
        finally:
            printed.unlink(missing_ok=True)
    return {"report.html": page.encode(), "report.md": md_text.encode()}


def _put_in_place(out: Path, scratch: Path, pages: dict[str, bytes]) -> None:
    """The figures written into scratch become out/figures (the old ones are removed), the
    pages out's report.html and report.md: each written beside its place first, then renamed
    into it, so that a full disk leaves the old report whole."""
    staged: list[tuple[Path, Path]] = []
    figures, old, swapped = out / "figures", None, False
    try:
        for name, data in pages.items():
            staged.append((scratch_path(out / name, "new"), out / name))
            atomic_write_bytes(staged[-1][0], data)
        if figures.exists() or figures.is_symlink():
            old = scratch_name(figures, "old")
            os.rename(figures, old)
        os.rename(scratch, figures)
        swapped = True
        for new, target in staged:
            os.replace(new, target)
    except BaseException:
        if swapped:  # the old figures back with the old pages
            os.rename(figures, scratch)
        if old is not None:
            os.rename(old, figures)
        raise
    finally:
        for new, _ in staged:
            new.unlink(missing_ok=True)
    if old is not None and (old.is_symlink() or not old.is_dir()):
        old.unlink()
    elif old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _made_folders(out: Path) -> list[Path]:
    """The folders that making out creates: out and its missing parents, deepest first."""
    made = []
    for folder in (out, *out.parents):
        if folder.exists() or folder.is_symlink():
            break
        made.append(folder)
    return made


def build(
    runs: list[Path], out: Path, pdf: Path | None = None, device: torch.device | None = None
) -> Path:
    """Write report.html and report.md into out, and the PDF to pdf when given (printed by a
    headless Chromium, every layer table unfolded); returns the HTML path. The architectures
    are traced on device (default the CPU). Every figure is drawn into a scratch folder of
    out first: a report refused on the way (a run folder that is none, a full disk) leaves
    out as it was, and a folder made for it is removed."""
    from vislab.report.ensembles import read_ensemble
    from vislab.report.pdf import find_browser

    if not runs:
        raise VislabError("give at least one run folder")
    browser = find_browser() if pdf is not None else None  # before the work, not after
    # every run read before any write; an ensemble's folder stands for its members' runs
    read, ensembles = [], []
    for path in runs:
        ensemble = read_ensemble(path)
        if ensemble is None:
            read.append(read_run(path))
        else:
            ensembles.append(ensemble)
            read += ensemble.members
    loaded = distinct_names(read)
    out = Path(out)
    for path, what in ((out, "--out"), (out / "figures", "the report's figures")):
        if (path.exists() or path.is_symlink()) and not path.is_dir():
            raise VislabError(f"{what} {path} is no folder; remove it or write elsewhere")
    made = _made_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive(out, "--out"):
            _build(loaded, ensembles, out, pdf, browser, device)
    except BaseException:
        for folder in made:  # deepest first; one that holds anything else stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return out / "report.html"


def _build(
    loaded: list[Run],
    ensembles: list[Ensemble],
    out: Path,
    pdf: Path | None,
    browser: str | None,
    device: torch.device | None,
) -> None:
    scratch = scratch_path(out / "figures", "new")
    try:
        scratch.mkdir()
        # each run's sections, then the figures across runs, then the pages (and the PDF)
        steps = Steps(len(loaded) + 2, "report")
        for run in loaded:
            _sections(run, scratch, device)
            steps.step(note=f"run {run.name}")
        context = _context(loaded, ensembles, scratch, device)
        steps.step(note="budget figures and architectures")
        pages = _render(context, scratch, pdf, browser)
        _put_in_place(out, scratch, pages)
        steps.step(note="report.html, report.md" + (f", {pdf}" if pdf else ""))
        steps.close()
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
