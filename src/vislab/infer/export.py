"""`vislab export`: a checkpoint's inference weights as safetensors, or the model as ONNX.

Both files carry the checkpoint's "vislab" metadata (model, classes, data set spec,
preprocessing, input size, scale and window) as JSON, so `vislab predict` reads them like a
checkpoint: safetensors holds tensors only and cannot run code; ONNX runs in ONNX Runtime
without PyTorch's model code. The graph takes any batch of inputs of the model's one size (a
segmenter's window): symbolic heights and widths sent torch.export into minutes of sympy over
timm's TF-"same" padding (the EfficientNet-Lite encoders). A window clipped to a tile smaller
than it is padded to the graph's size by checkpoint.OnnxModel.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
import torch.nn as nn

from vislab.devices import model_device
from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes
from vislab.infer.checkpoint import load_model
from vislab.infer.meta import META_KEY, ModelMeta

FORMATS = ("safetensors", "onnx")
ENGINES = ("auto", "torch", "onnxruntime")


def file_sha256(path: Path) -> str:
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _Logits(nn.Module):
    """Segmenters return {"out": logits}; an ONNX graph returns the tensor."""

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y["out"] if self.task == "segmentation" else y


def export(
    ckpt: Path, fmt: str, out: Path | None = None, device: torch.device | None = None
) -> Path:
    """Write ckpt's model as fmt next to it (or to out), traced on device (default the CPU)
    for ONNX; returns the path written."""
    if fmt not in FORMATS:
        raise VislabError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    ckpt = Path(ckpt)
    out = Path(out) if out else ckpt.with_suffix(f".{fmt}")
    if out.suffix != f".{fmt}":
        raise VislabError(f"--out {out} must end in .{fmt}")
    model, meta = load_model(ckpt, device=device)
    if meta.format != "checkpoint":
        raise VislabError(f"{ckpt} is already an export ({meta.format}); give its checkpoint")
    info = json.dumps(meta.for_export(file_sha256(ckpt)).to_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save

        state = {k: v.cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(out, save(state, metadata={META_KEY: info}))
        return out
    atomic_write_bytes(out, _onnx_bytes(model, meta, info))
    return out


def _onnx_bytes(model: nn.Module, meta: ModelMeta, info: str) -> bytes:
    import onnx

    h, w = meta.window or meta.image_size
    x = torch.zeros(2, 3, h, w, device=model_device(model))
    dims = {0: torch.export.Dim("batch", min=1, max=4096)}
    program = torch.onnx.export(
        _Logits(model, meta.task).eval(),
        (x,),
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes={"x": dims},
        dynamo=True,
        verbose=False,
    )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {META_KEY: info})
    buf = io.BytesIO()
    onnx.save_model(proto, buf)
    return buf.getvalue()


def model_file(ckpt: Path, engine: str = "auto", device: torch.device | None = None) -> Path:
    """The file `vislab predict` loads for an engine: the checkpoint, or its ONNX export.

    auto: ONNX Runtime when given a .onnx file or, on the CPU, when the export beside the
    checkpoint was made from the checkpoint as it is now (the SHA-256 it records; ONNX Runtime
    ran 1.3-2.5x faster than PyTorch on the CPU for every model we measured,
    docs/RESULTS.md), PyTorch otherwise.
    onnxruntime: exports first when there is no such export, and keeps it beside the
    checkpoint for the next run."""
    if engine not in ENGINES:
        raise VislabError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    ckpt = Path(ckpt)
    if ckpt.suffix == ".onnx":
        if engine == "torch":
            raise VislabError(f"{ckpt} is an ONNX model: it runs with --engine onnxruntime")
        return ckpt
    if engine == "torch" or not ckpt.is_file():
        return ckpt  # a missing checkpoint: load_model says so
    exported = ckpt.with_suffix(".onnx")
    current = exported.is_file() and _onnx_source(exported) == file_sha256(ckpt)
    on_cpu = device is None or device.type == "cpu"
    if engine == "auto" and not (current and on_cpu):
        return ckpt
    if not current:
        export(ckpt, "onnx", exported)
    return exported


def _onnx_source(path: Path) -> str | None:
    """The checkpoint hash an ONNX export records; None for a file that records none."""
    import onnx

    try:
        proto = onnx.load_model(str(path), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        return json.loads(props[META_KEY]).get("source_sha256")
    except Exception:  # unreadable or foreign: not this checkpoint's export
        return None
