"""Layer tables: each layer's output shape and parameter count, traced with forward hooks."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from vislab.devices import model_device

MAX_ROWS = 40


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
    that keeps the table at most MAX_ROWS rows long."""
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
