"""Layer tables: each layer's output shape and parameter count, traced with forward hooks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn as nn

from vislab.devices import model_device
from vislab.errors import VislabError

MAX_ROWS = 40
T = TypeVar("T")


def on_meta(model: nn.Module) -> nn.Module:
    """A copy of model whose parameters and buffers are on PyTorch's meta device: tensors
    with shapes and no memory, so that a forward pass at any input size allocates nothing
    and gives every shape (the parameters keep their requires_grad)."""
    memo: dict[int, torch.Tensor] = {}
    for t in [*model.parameters(), *model.buffers()]:
        empty = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(empty, t.requires_grad) if isinstance(t, nn.Parameter) else empty
    return copy.deepcopy(model, memo)


def at_any_size(
    fn: Callable[[nn.Module, tuple[int, int]], T], model: nn.Module, input_size: tuple[int, int]
) -> T:
    """fn(model, input_size), a pass that reads shapes only, run on a meta copy of the model
    (on_meta: no memory, whatever the size); where an operation has no meta version, on the
    model itself, a failed allocation then one line. A VislabError (the model refusing the
    size, say) is the answer, not a missing meta version: it is raised as it is."""
    from vislab.infer.forward import memory_named

    try:
        return fn(on_meta(model), input_size)
    except VislabError:
        raise
    except Exception:  # an operation that runs on real tensors only
        h, w = input_size
        with memory_named(f"tracing {type(model).__name__} at {w}x{h}", "draw it smaller"):
            return fn(model, input_size)


def _shape(out: Any) -> list[int] | None:
    if isinstance(out, dict):
        out = out.get("out")
    if isinstance(out, (tuple, list)):
        out = out[0] if out else None
    return list(out.shape[1:]) if isinstance(out, torch.Tensor) else None


def _modules_at(model: nn.Module, depth: int) -> list[tuple[str, nn.Module]]:
    """Modules at `depth` (dots in the name + 1), and leaves above it."""
    picked = []
    for name, m in model.named_modules():
        if not name or isinstance(m, nn.ModuleList | nn.ModuleDict):
            continue  # containers are never called: their items are listed instead
        d = name.count(".") + 1
        inside_container = d > depth and isinstance(
            model.get_submodule(name.rsplit(".", 1)[0]), nn.ModuleList | nn.ModuleDict
        )
        if (
            d == depth
            or (d < depth and not list(m.children()))
            or (inside_container and d == depth + 1)
        ):
            picked.append((name, m))
    return picked


def layer_table(model: nn.Module, input_size: tuple[int, int]) -> dict[str, Any]:
    """Rows of (name, type, output shape, parameters) in execution order, at the deepest level
    that keeps the table at most MAX_ROWS rows long (at_any_size: no memory, whatever the
    size)."""
    return at_any_size(_layer_table, model, input_size)


def _layer_table(model: nn.Module, input_size: tuple[int, int]) -> dict[str, Any]:
    depth = 1
    while depth < 8 and len(_modules_at(model, depth + 1)) <= MAX_ROWS:
        depth += 1
    rows: list[dict[str, Any]] = []
    hooks = []
    for name, m in _modules_at(model, depth):

        def hook(mod, inp, out, name=name):
            params = sum(p.numel() for p in mod.parameters())
            rows.append(
                {"name": name, "type": type(mod).__name__, "output": _shape(out), "params": params}
            )

        hooks.append(m.register_forward_hook(hook))
    x = torch.zeros(1, 3, *input_size, device=model_device(model))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {
        "input": [3, *input_size],
        "output": _shape(out),
        "rows": rows,
        "total_params": sum(p.numel() for p in model.parameters()),
    }


def format_table(table: dict[str, Any]) -> str:
    """Plain-text rendering for the terminal."""
    lines = [f"{'layer':<34} {'type':<22} {'output':<18} {'params':>12}"]
    lines.append(f"{'input':<34} {'':<22} {str(table['input']):<18} {'':>12}")
    for r in table["rows"]:
        lines.append(f"{r['name']:<34} {r['type']:<22} {str(r['output']):<18} {r['params']:>12,}")
    lines.append(f"{'output':<34} {'':<22} {str(table['output']):<18} {table['total_params']:>12,}")
    return "\n".join(lines)
