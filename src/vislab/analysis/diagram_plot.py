"""Architecture diagrams drawn: one box a block, top to bottom in execution order, the
connections that skip blocks as arcs on the right (the diagrams of ``diagram.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vislab.analysis.diagram import Block, Diagram


def _shape_text(shape: list[int] | None) -> str:
    return "x".join(str(s) for s in shape) if shape else ""


def _params_text(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n) if n else ""


def _lanes(edges: list[tuple[int, int]]) -> list[int]:
    """A lane for each edge, so that edges in one lane do not overlap (edges from one source,
    or into one target, may share a lane)."""
    taken: list[list[tuple[int, int]]] = []
    lanes = []
    for a, b in edges:
        lo, hi = min(a, b), max(a, b)
        for lane, spans in enumerate(taken):
            if all(hi <= min(x, y) or lo >= max(x, y) or x == a or y == b for x, y in spans):
                spans.append((a, b))
                lanes.append(lane)
                break
        else:
            taken.append([(a, b)])
            lanes.append(len(taken) - 1)
    return lanes


def _colour_part(d: Diagram) -> int:
    """The level of the module names that tells the model's parts apart: the first one below
    the prefix every block shares (net.backbone / net.classifier: level 1)."""
    names = [b.name.split(".") for b in d.blocks if b.type]
    level = 0
    while names and all(len(n) > level + 1 for n in names) and len({n[level] for n in names}) == 1:
        level += 1
    return level


STEP, BOX_H, BOX_W = 0.34, 0.25, 4.6  # inches: row pitch, box height and width
LANE = 0.13  # inches between the lanes of skip arcs


def _style(b: Block, colour: Any) -> dict[str, Any]:
    """A box's look: a module in the colour of its part, the input and output grey, an
    operation between blocks dashed; a block whose output is never used faded."""
    if b.type:
        style = dict(facecolor=colour, edgecolor="0.3", linewidth=0.6)
    elif b.name in ("input", "output"):
        style = dict(facecolor="0.85", edgecolor="0.3", linewidth=0.6)
    else:
        style = dict(facecolor="white", edgecolor="0.3", linewidth=0.6, linestyle="--")
    if not b.used:
        style["alpha"] = 0.4
    return style


def _box(ax: Any, b: Block, y: float, style: dict[str, Any]) -> None:
    """One block: its box, its name and type on the left, its shape and parameters on the
    right, and a red arc on its left when it joins two paths inside."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    box = FancyBboxPatch(
        (0, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0,rounding_size=0.04", **style
    )
    ax.add_patch(box)
    right = "   ".join(t for t in (_shape_text(b.shape), _params_text(b.params)) if t)
    if b.frozen:
        right = "frozen   " + right
    left = f"{b.name}  {b.type}".strip()
    room = int(BOX_W / 0.052) - len(right) - 3  # characters of 6.5 pt that fit beside it
    if len(left) > room:
        left = left[: room - 1] + "…"
    ax.text(0.06, y, left, fontsize=6.5, va="center")
    ax.text(BOX_W - 0.06, y, right, fontsize=6.5, va="center", ha="right", family="monospace")
    if b.merge:
        arc = FancyArrowPatch(
            (-0.02, y + BOX_H / 2 - 0.02),
            (-0.02, y - BOX_H / 2 + 0.02),
            connectionstyle="arc3,rad=0.9",
            arrowstyle="-|>",
            mutation_scale=5,
            linewidth=0.6,
            color="tab:red",
        )
        ax.add_patch(arc)
        ax.text(-0.2, y, b.merge, fontsize=6, va="center", ha="right", color="tab:red")


def _edges(ax: Any, d: Diagram, y: list[float], lanes: list[int]) -> None:
    """Arrows down between consecutive blocks; arcs on the right, one lane each, for the
    connections that skip blocks."""
    for a, b in d.edges:
        if b == a + 1:
            ax.annotate(
                "",
                xy=(BOX_W / 2, y[b] + BOX_H / 2),
                xytext=(BOX_W / 2, y[a] - BOX_H / 2),
                arrowprops=dict(arrowstyle="-|>", lw=0.6, color="0.3", mutation_scale=6),
            )
    for (a, b), lane in zip(d.skips(), lanes, strict=True):
        x = BOX_W + 0.15 + LANE * lane
        ax.plot([BOX_W, x, x], [y[a], y[a], y[b]], color="tab:blue", lw=0.6)
        ax.annotate(
            "",
            xy=(BOX_W, y[b]),
            xytext=(x, y[b]),
            arrowprops=dict(arrowstyle="-|>", lw=0.6, color="tab:blue", mutation_scale=6),
        )


def draw(d: Diagram, title: str, path: Path) -> None:
    """The diagram as a PNG: one box a block, top to bottom in execution order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vislab.fileio import atomic_savefig

    lanes = _lanes(d.skips())
    n_lanes = max(lanes, default=-1) + 1
    width = BOX_W + 0.7 + LANE * n_lanes + 0.2
    height = STEP * len(d.blocks) + 0.5
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-0.6, width - 0.6)
    ax.set_ylim(-height + 0.45, 0.05 + 0.3)
    ax.axis("off")
    ax.text(-0.5, 0.25, title, fontsize=8, va="center", weight="bold")
    palette = plt.get_cmap("Pastel1").colors + plt.get_cmap("Pastel2").colors
    part = _colour_part(d)
    parts: dict[str, int] = {}  # a colour for each part of the model, in order of appearance
    y = [-i * STEP for i in range(len(d.blocks))]
    for i, b in enumerate(d.blocks):
        key = ".".join(b.name.split(".")[: part + 1])
        colour = palette[parts.setdefault(key, len(parts)) % len(palette)] if b.type else None
        _box(ax, b, y[i], _style(b, colour))
    _edges(ax, d, y, lanes)
    atomic_savefig(fig, path, dpi=130)
    plt.close(fig)
