"""Architecture diagrams: a model's data flow between its blocks, traced from one forward pass.

Forward hooks on every module and a torch-function mode record each leaf module's call and
each tensor operation outside the leaves (the additions of residual blocks, a decoder's
upsampling and merges), and which earlier call produced every tensor they read. That fine
graph is then drawn at the deepest level of modules that keeps it at most MAX_BLOCKS blocks:
a block's output shape and parameters in its box, the connections that skip blocks as arcs,
and a mark on the blocks that add or concatenate two paths inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

MAX_BLOCKS = 36
MERGES = {"add": "+", "cat": "cat"}  # the operations that join two paths, and their mark
_CONTAINERS = (nn.ModuleList, nn.ModuleDict)


@dataclass
class _Call:
    """One node of the fine graph: a leaf module's call, a tensor operation, the input or the
    output. where: the module it ran in (an operation: the module whose forward called it)."""

    kind: str  # "module", "op", "input", "output"
    name: str
    where: str
    shape: list[int] | None
    sources: list[int] = field(default_factory=list)


@dataclass
class Block:
    """A box of the diagram: a module (or an operation between modules) at the chosen level."""

    name: str
    type: str
    shape: list[int] | None
    params: int
    merge: str | None = None  # "+" or "cat" when it joins two paths inside
    used: bool = True  # False: its output does not reach the model's output (a training head)
    frozen: bool = False  # it has parameters and none of them is trained


@dataclass
class Diagram:
    blocks: list[Block]  # in execution order, the input first and the output last
    edges: list[tuple[int, int]]  # (from block, to block), indices into blocks
    depth: int

    def skips(self) -> list[tuple[int, int]]:
        """The connections that do not go to the next block."""
        return [(a, b) for a, b in self.edges if b != a + 1]


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


def _op_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func)).strip("_")
    return {"iadd": "add", "radd": "add", "concat": "cat", "concatenate": "cat"}.get(name, name)


class _Tracer(TorchFunctionMode):
    """Records the fine graph of one forward pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.calls: list[_Call] = []
        self.producer: dict[int, int] = {}  # id(tensor) -> index of the call that made it
        self.alive: list[torch.Tensor] = []  # keeps every seen tensor, so ids stay unique
        self.stack: list[str] = []  # the modules running now
        self.leaf: str | None = None  # the leaf module running now: its own work is not traced
        self.sources: list[int] = []  # what that leaf reads
        self.hooks = []
        for name, m in model.named_modules():
            if name:
                leaf = not list(m.children())
                self.hooks.append(
                    m.register_forward_pre_hook(self._enter(name, leaf), with_kwargs=True)
                )
                self.hooks.append(m.register_forward_hook(self._leave(name, leaf)))

    def _sources(self, tensors: list[torch.Tensor]) -> list[int]:
        seen: list[int] = []
        for t in tensors:
            src = self.producer.get(id(t))
            if src is not None and src not in seen:
                seen.append(src)
        return seen

    def _made(self, index: int, out: Any) -> None:
        for t in _tensors(out):
            self.producer[id(t)] = index
            self.alive.append(t)

    def add(self, call: _Call, out: Any) -> None:
        self.calls.append(call)
        self._made(len(self.calls) - 1, out)

    def _enter(self, name: str, leaf: bool):
        def hook(module, args, kwargs):
            if self.leaf is None:
                self.stack.append(name)
                if leaf:
                    self.leaf = name
                    self.sources = self._sources(_tensors(args) + _tensors(kwargs))

        return hook

    def _leave(self, name: str, leaf: bool):
        def hook(module, args, out):
            if self.leaf is not None and self.leaf != name:
                return  # a module that a leaf called: part of the leaf's own work
            self.stack.pop()
            if leaf:
                self.leaf = None
                outs = _tensors(out)
                shape = list(outs[0].shape[1:]) if outs else None
                call = _Call("module", name, name, shape, self.sources)
                self.add(call, out)

        return hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.leaf is not None:
            return out
        outs = _tensors(out)
        ins = _tensors(list(args)) + _tensors(kwargs or {})
        sources = self._sources(ins)
        if not outs or not sources:
            return out
        name = _op_name(func)
        known = [t for t in ins if id(t) in self.producer]
        if len(sources) == 1 and list(outs[0].shape) == list(known[0].shape):
            self._made(sources[0], out)  # same shape, one source: relu, dropout, a view
            return out
        where = self.stack[-1] if self.stack else ""
        self.add(_Call("op", name, where, list(outs[0].shape[1:]), sources), out)
        return out

    def close(self) -> None:
        for h in self.hooks:
            h.remove()


def _trace(model: nn.Module, input_size: tuple[int, int]) -> list[_Call]:
    x = torch.zeros(1, 3, *input_size)
    tracer = _Tracer(model)
    tracer.add(_Call("input", "input", "", list(x.shape[1:])), x)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tracer:
            out = model(x)
    finally:
        tracer.close()
        model.train(was_training)
    outs = _tensors(out)
    shape = list(outs[0].shape[1:]) if outs else None
    tracer.calls.append(_Call("output", "output", "", shape, tracer._sources(outs)))
    return tracer.calls


def _atomic(m: nn.Module) -> bool:
    """A module drawn as one box at any level: a leaf, or one made of leaves only (a
    convolution, its batch norm and activation)."""
    return all(not list(c.children()) for c in m.children())


def _block_of(model: nn.Module, name: str, depth: int) -> str | None:
    """The module at depth, or the first atomic one above it, that holds the module called
    name (a ModuleList or ModuleDict is never a block: its items are); None when name is
    shallower than depth."""
    parts = name.split(".") if name else []
    for k in range(1, len(parts) + 1):
        cut = ".".join(parts[:k])
        m = model.get_submodule(cut)
        if not isinstance(m, _CONTAINERS) and (k >= depth or _atomic(m)):
            return cut
    return None


def _group_keys(model: nn.Module, calls: list[_Call], depth: int) -> list[tuple[str, str]]:
    """(block, module or "") of each call: the block is the module that holds the call at
    this level (numbered again when a module is called a second time), or the call itself."""
    keys: list[tuple[str, str]] = []
    calls_of: dict[str, int] = {}
    for i, c in enumerate(calls):
        module = _block_of(model, c.where, depth) if c.kind in ("module", "op") else None
        if module:
            if not keys or keys[-1][1] != module:  # a new call of that module
                calls_of[module] = calls_of.get(module, 0) + 1
            n = calls_of[module]
            keys.append((module if n == 1 else f"{module}#{n}", module))
        else:  # the input, the output, or an operation between this level's blocks
            keys.append((f"{c.kind}:{c.name}:{i}", ""))
    return keys


def _type_text(m: nn.Module) -> str:
    """A block's type: a Sequential of leaves says what it is made of."""
    if isinstance(m, nn.Sequential) and _atomic(m):
        kinds = [type(c).__name__ for c in m.children() if not isinstance(c, nn.Identity)]
        return " · ".join(kinds)
    return type(m).__name__


def _diagram(model: nn.Module, calls: list[_Call], depth: int) -> Diagram:
    keys = _group_keys(model, calls, depth)
    order: dict[str, int] = {}
    for block, _ in keys:
        order.setdefault(block, len(order))
    members: dict[int, list[int]] = {}
    for i, (block, _) in enumerate(keys):
        members.setdefault(order[block], []).append(i)
    modules = dict(model.named_modules())
    blocks, edges = [], []
    for b, idx in sorted(members.items()):
        module = keys[idx[0]][1]
        if module:
            merge = None
            for c in (calls[i] for i in idx):
                if c.kind == "op" and c.name in MERGES and len(c.sources) > 1:
                    merge = MERGES[c.name]
            m = modules[module]
            params = sum(p.numel() for p in m.parameters())
            shape = calls[idx[-1]].shape
            frozen = params > 0 and not any(p.requires_grad for p in m.parameters())
            blocks.append(Block(module, _type_text(m), shape, params, merge, frozen=frozen))
        else:
            c = calls[idx[0]]
            blocks.append(Block(c.name, "", c.shape, 0))
        for i in idx:
            for s in calls[i].sources:
                e = (order[keys[s][0]], b)
                if e[0] != b and e not in edges:
                    edges.append(e)
    used = {len(blocks) - 1}
    for a, b in sorted(edges, reverse=True):
        if b in used:
            used.add(a)
    for i, block in enumerate(blocks):
        block.used = i in used
    return Diagram(blocks, sorted(edges), depth)


def diagram(model: nn.Module, input_size: tuple[int, int]) -> Diagram:
    """The model's blocks and data flow at the deepest level of modules with at most
    MAX_BLOCKS blocks between the input and the output (level 1 when even that has more)."""
    calls = _trace(model, input_size)
    best = _diagram(model, calls, 1)
    for depth in range(2, 9):
        d = _diagram(model, calls, depth)
        names = [b.name for b in d.blocks]
        if len(d.blocks) - 2 > MAX_BLOCKS or names == [b.name for b in best.blocks]:
            break
        best = d
    return best


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


def caption(d: Diagram) -> str:
    """What the drawing shows, in its own numbers."""
    inner = d.blocks[1:-1]
    merges = [b for b in inner if b.merge]
    n = len(d.skips())
    skips = f"{n} connection{'s' if n > 1 else ''} that skip blocks" if n else ""
    text = (
        f"{len(inner)} blocks (modules at depth {d.depth}, and the operations between them), "
        "top to bottom in execution order, each with its output shape and parameters; "
        + (f"{skips}, drawn as blue arcs on the right" if n else "no connection skips a block")
    )
    if merges:
        adds = sum(b.merge == "+" for b in merges)
        cats = len(merges) - adds
        parts = [f"{adds} add two paths inside (+: a residual connection)"] if adds else []
        parts += [f"{cats} concatenate branches inside (cat)"] if cats else []
        text += "; of the blocks, " + " and ".join(parts)
    unused = [b.name for b in inner if not b.used]
    if unused:
        names = ", ".join(unused[:3]) + (", ..." if len(unused) > 3 else "")
        text += (
            f"; {len(unused)} drawn faded ({names}) do not reach the output in evaluation"
            " (a head for training)"
        )
    frozen = sum(b.frozen for b in inner)
    if frozen:
        text += f"; {frozen} keep their pretrained weights (frozen)"
    return text + "."
