"""`vislab export`: a checkpoint's inference weights as safetensors, or the model as ONNX.

Both files carry the checkpoint's "vislab" metadata (model, classes, preprocessing, input size)
as JSON, so `vislab predict` reads them like a checkpoint: safetensors holds tensors only and
cannot run code; ONNX runs in ONNX Runtime without PyTorch's model code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes
from vislab.infer.checkpoint import META_KEY, load_model

FORMATS = ("safetensors", "onnx")
ENGINES = ("auto", "torch", "onnxruntime")


def inference_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """What prediction needs: no training config, no optimizer state."""
    from vislab.models import without_weights

    keep = ("task", "model", "model_kwargs", "num_classes", "classes", "mean", "std")
    out = {k: meta[k] for k in keep}
    out["model_kwargs"] = without_weights(meta["model_kwargs"])
    out["image_size"] = list(meta["image_size"]) if meta["image_size"] is not None else None
    out["epoch"] = meta.get("epoch")
    return out


class _Logits(nn.Module):
    """Segmenters return {"out": logits}; an ONNX graph returns the tensor."""

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y["out"] if self.task == "segmentation" else y


def export(ckpt: Path, fmt: str, out: Path | None = None) -> Path:
    """Write ckpt's model as fmt next to it (or to out); returns the path written."""
    if fmt not in FORMATS:
        raise VislabError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    ckpt = Path(ckpt)
    out = Path(out) if out else ckpt.with_suffix(f".{fmt}")
    if out.suffix != f".{fmt}":
        raise VislabError(f"--out {out} must end in .{fmt}")
    model, meta = load_model(ckpt)
    info = json.dumps(inference_meta(meta))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save

        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(out, save(state, metadata={META_KEY: info}))
        return out
    atomic_write_bytes(out, _onnx_bytes(model, meta, info))
    return out


def _onnx_bytes(model: nn.Module, meta: dict[str, Any], info: str) -> bytes:
    import onnx

    h, w = meta["image_size"]
    x = torch.zeros(2, 3, h, w)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        _Logits(model, meta["task"]).eval(),
        (x,),
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: batch}},
        dynamo=True,
        verbose=False,
    )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {META_KEY: info})
    buf = io.BytesIO()
    onnx.save_model(proto, buf)
    return buf.getvalue()


def model_file(ckpt: Path, engine: str = "auto") -> Path:
    """The file `vislab predict` loads for an engine: the checkpoint, or its ONNX export.

    auto: ONNX Runtime when given a .onnx file or when an export newer than the checkpoint
    sits beside it (ONNX Runtime ran 1.3-2.5x faster than PyTorch for every model we measured,
    docs/RESULTS.md), PyTorch otherwise. onnxruntime: exports first if needed, and keeps the
    export beside the checkpoint for the next run."""
    if engine not in ENGINES:
        raise VislabError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    ckpt = Path(ckpt)
    if ckpt.suffix == ".onnx":
        if engine == "torch":
            raise VislabError(f"{ckpt} is an ONNX model: it runs with --engine onnxruntime")
        return ckpt
    exported = ckpt.with_suffix(".onnx")
    fresh = (
        ckpt.is_file() and exported.is_file() and exported.stat().st_mtime >= ckpt.stat().st_mtime
    )
    if engine == "torch" or (engine == "auto" and not fresh):
        return ckpt
    if not fresh:
        export(ckpt, "onnx", exported)
    return exported
