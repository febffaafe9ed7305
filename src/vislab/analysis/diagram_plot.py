"""Architecture diagrams drawn: one box a block, top to bottom in execution order, the
connections that skip blocks as arcs on the right (the diagrams of ``diagram.py``)."""

from __future__ import annotations

from pathlib import Path

from vislab.analysis.diagram import Diagram


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


def draw(d: Diagram, title: str, path: Path) -> None:
    """The diagram as a PNG: one box a block, top to bottom in execution order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from vislab.fileio import atomic_savefig

    step, box_h, box_w = 0.34, 0.25, 4.6
    skips = d.skips()
    lanes = _lanes(skips)
    n_lanes = max(lanes, default=-1) + 1
    width = box_w + 0.7 + 0.13 * n_lanes + 0.2
    height = step * len(d.blocks) + 0.5
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-0.6, width - 0.6)
    ax.set_ylim(-height + 0.45, 0.05 + 0.3)
    ax.axis("off")
    ax.text(-0.5, 0.25, title, fontsize=8, va="center", weight="bold")
    palette = plt.get_cmap("Pastel1").colors + plt.get_cmap("Pastel2").colors
    part = _colour_part(d)
    parts: dict[str, int] = {}
    y = [-i * step for i in range(len(d.blocks))]
    for i, b in enumerate(d.blocks):
        if b.type:  # a module: coloured by the part of the model that holds it
            key = ".".join(b.name.split(".")[: part + 1])
            colour = palette[parts.setdefault(key, len(parts)) % len(palette)]
            style = dict(facecolor=colour, edgecolor="0.3", linewidth=0.6)
        elif b.name in ("input", "output"):
            style = dict(facecolor="0.85", edgecolor="0.3", linewidth=0.6)
        else:  # an operation between blocks
            style = dict(facecolor="white", edgecolor="0.3", linewidth=0.6, linestyle="--")
        if not b.used:
            style["alpha"] = 0.4
        ax.add_patch(
            FancyBboxPatch(
                (0, y[i] - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0,rounding_size=0.04",
                **style,
            )
        )
        right = "   ".join(t for t in (_shape_text(b.shape), _params_text(b.params)) if t)
        if b.frozen:
            right = "frozen   " + right
        left = f"{b.name}  {b.type}".strip()
        room = int(box_w / 0.052) - len(right) - 3  # characters of 6.5 pt that fit beside it
        if len(left) > room:
            left = left[: room - 1] + "…"
        ax.text(0.06, y[i], left, fontsize=6.5, va="center")
        ax.text(
            box_w - 0.06, y[i], right, fontsize=6.5, va="center", ha="right", family="monospace"
        )
        if b.merge:
            ax.add_patch(
                FancyArrowPatch(
                    (-0.02, y[i] + box_h / 2 - 0.02),
                    (-0.02, y[i] - box_h / 2 + 0.02),
                    connectionstyle="arc3,rad=0.9",
                    arrowstyle="-|>",
                    mutation_scale=5,
                    linewidth=0.6,
                    color="tab:red",
                )
            )
            ax.text(-0.2, y[i], b.merge, fontsize=6, va="center", ha="right", color="tab:red")
    for a, b in d.edges:
        if b == a + 1:
            ax.annotate(
                "",
                xy=(box_w / 2, y[b] + box_h / 2),
                xytext=(box_w / 2, y[a] - box_h / 2),
                arrowprops=dict(arrowstyle="-|>", lw=0.6, color="0.3", mutation_scale=6),
            )
    for (a, b), lane in zip(skips, lanes, strict=True):
        x = box_w + 0.15 + 0.13 * lane
        ax.plot([box_w, x, x], [y[a], y[a], y[b]], color="tab:blue", lw=0.6)
        ax.annotate(
            "",
            xy=(box_w, y[b]),
            xytext=(x, y[b]),
            arrowprops=dict(arrowstyle="-|>", lw=0.6, color="tab:blue", mutation_scale=6),
        )
    atomic_savefig(fig, path, dpi=130)
    plt.close(fig)
