"""Architecture diagrams: a model's data flow between its blocks, traced from one forward pass.

Forward hooks on every module and a torch-function mode record each leaf module's call and
each tensor operation outside the leaves (the additions of residual blocks, a decoder's
upsampling and merges), and which earlier call produced every tensor they read, on a copy of
the model on PyTorch's meta device (shapes without memory: any input size is traced as it
is). That fine graph is then drawn at the deepest level of modules that keeps it at most
MAX_BLOCKS blocks: a block's output shape and parameters in its box, the connections that
skip blocks as arcs, and a mark on the blocks that add or concatenate two paths inside
(``diagram_plot.draw``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from vislab.analysis.architecture import at_any_size
from vislab.devices import model_device

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
    """The fine graph of one forward pass at input_size (at_any_size: no memory on a meta
    copy of the model)."""
    return at_any_size(_traced, model, input_size)


def _traced(model: nn.Module, input_size: tuple[int, int]) -> list[_Call]:
    x = torch.zeros(1, 3, *input_size, device=model_device(model))
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
