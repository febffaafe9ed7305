"""A segmenter's masks over training, as `vislab progress` wrote them (RUN/progress.png and
progress.json): the figure and the sentence of each tile's mIoU at each snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vislab.report.run import Run, Section


def mask_progress(run: Run, figures: Path) -> Section:
    """The progress figure of a segmentation run and what it shows, or what is missing."""
    prog = run.folder.progress_figure
    out = Section()
    if not (prog.is_file() and prog.with_suffix(".json").is_file()):
        out.missing.append(f"mask progress figure (run `vislab progress {run.path}`)")
        return out
    facts = json.loads(prog.with_suffix(".json").read_text())
    out.figures["progress"] = prog
    out.facts["progress"] = facts
    out.text["progress"] = _said(facts)
    return out


def _said(prog: dict[str, Any]) -> str:
    parts = []
    for tile, values in prog["miou"].items():
        shown = " → ".join(f"{v:.3f}" for v in values)
        parts.append(f"tile {tile}: {shown}")
    text = (
        f"mIoU of each tile at epochs {', '.join(map(str, prog['epochs']))}: "
        + "; ".join(parts)
        + "."
    )
    if "predicted_share" in prog:
        truth, first = prog["truth_share"], prog["predicted_share"][0]
        top = max(first, key=first.get)
        text += (
            f" At epoch {prog['epochs'][0]}, {first[top]:.0%} of these tiles' pixels are "
            f"predicted {top} (truth: {truth.get(top, 0):.0%});"
            f" by epoch {prog['epochs'][-1]}, {prog['predicted_share'][-1][top]:.0%}."
        )
    return text
