"""Reading vislab checkpoints (Lightning's best/last, or weights-only snapshots) for inference.

Every checkpoint is a plain dict loadable with ``torch.load(..., weights_only=True)``; its
``"vislab"`` entry (infer/meta.py) says which model to build and how its inputs were
preprocessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from vislab.errors import VislabError
from vislab.fileio import require_file
from vislab.infer.meta import META_KEY, ModelMeta, exported_meta, read_meta

# how the files torch.save writes begin: a zip archive, or (before PyTorch 1.6) a pickle
TORCH_SAVE_MAGIC = (b"PK\x03\x04", b"\x80")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    require_file(path, "checkpoint")
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise VislabError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if not head.startswith(TORCH_SAVE_MAGIC):
        raise VislabError(
            f"cannot read checkpoint {path}: not a plain-data checkpoint (not a file "
            f"torch.save writes: it starts with {head!r})"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise VislabError(f"cannot read checkpoint {path}: {_first_cause(e)}") from None
    if not isinstance(ckpt, dict) or META_KEY not in ckpt or "state_dict" not in ckpt:
        raise VislabError(f"{path} is not a vislab checkpoint (no 'vislab' metadata)")
    return ckpt


def _first_cause(e: Exception) -> str:
    """One line of torch.load's error: its weights-only refusals span a paragraph."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if line.endswith("WeightsUnpickler error:"):
            return f"not a plain-data checkpoint (weights-only load refused it: {lines[i + 1]})"
    return lines[0] if lines else type(e).__name__


def load_model(
    path: str | Path, task: str | None = None, device: torch.device | None = None
) -> tuple[nn.Module, ModelMeta]:
    """Build the model of a checkpoint, or of a `vislab export` file (.safetensors, .onnx), in
    eval mode on device (default the CPU; an ONNX model runs with that device's ONNX Runtime
    provider); returns (model, meta). meta.format says which.

    meta.epoch is the 1-based epoch the weights are from: snapshots store it so, Lightning
    stores the 0-based index of the epoch it finished."""
    path = Path(path)
    device = device or torch.device("cpu")
    if path.suffix == ".onnx":
        model, meta = _load_onnx(path, device)
    else:
        if path.suffix == ".safetensors":
            meta, state = _read_safetensors(path)
        else:
            ckpt = read_checkpoint(path)
            meta = ModelMeta.from_dict(ckpt[META_KEY], path, epoch=_epoch(ckpt, path))
            prefix = "model."
            state = {
                k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)
            }
        model = build_model(path, meta, state).to(device)
    if task is not None and meta.task != task:
        raise VislabError(f"{path} is a {meta.task} model, not {task}")
    return model.eval(), meta


def _epoch(ckpt: dict[str, Any], path: Path) -> int | None:
    """The 1-based epoch of a checkpoint's weights: snapshots store it so, Lightning the
    0-based index of the epoch it finished; None when it stores none."""
    if "epoch" not in ckpt:
        return None
    e = ckpt["epoch"]
    if not isinstance(e, int) or isinstance(e, bool) or e < 0:
        raise VislabError(f"{path}: its epoch must be an integer from 0, not {e!r}")
    return e + (1 if "pytorch-lightning_version" in ckpt else 0)


def build_model(path: Path, meta: ModelMeta, state: dict[str, torch.Tensor]) -> nn.Module:
    """The model that meta names, with the weights of state (path names them in errors).

    It is built first on the meta device (no memory): a model of the task the metadata
    claims, that its model_kwargs build, and no larger than the weights the file holds, is
    the only one allocated."""
    from vislab.models import model_task, without_weights

    kwargs = without_weights(meta.model_kwargs)
    try:
        kind = model_task(meta.model)  # an unknown name: one line, with the closest names
    except VislabError as e:
        raise VislabError(f"{path}: {e}") from None
    if kind != meta.task:
        raise VislabError(
            f"{path}: its vislab metadata says task {meta.task}, but its model {meta.model} "
            f"is a {kind} model"
        )
    needed = _values_needed(path, meta, kwargs)
    held = sum(v.numel() for v in state.values())
    if needed is not None and needed > held:
        raise VislabError(
            f"{path}: weights do not fit {meta.model}: its vislab metadata (model_kwargs "
            f"{kwargs}) builds one of {needed:,} values, the file holds {held:,}"
        )
    model = _create(path, meta, kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise VislabError(f"{path}: weights do not fit {meta.model}: {e}") from None
    return model


def _values_needed(path: Path, meta: ModelMeta, kwargs: dict[str, Any]) -> int | None:
    """How many values the state dict of meta's model holds, counted on the meta device
    (nothing allocated); None under a torch without its device context (the course's 1.12)."""
    if not hasattr(torch.device, "__enter__"):
        return None
    with torch.device("meta"):
        shape = _create(path, meta, kwargs)
    return sum(v.numel() for v in shape.state_dict().values())


def _create(path: Path, meta: ModelMeta, kwargs: dict[str, Any]) -> nn.Module:
    """meta's model, built from a file's model_kwargs: a builder's error is one line."""
    from vislab.models import create_model

    try:
        return create_model(meta.model, num_classes=meta.num_classes, **kwargs)
    except VislabError as e:
        raise VislabError(f"{path}: {e}") from None
    except Exception as e:  # a builder's TypeError, ValueError, ... on a value of the file
        raise VislabError(
            f"{path}: its vislab metadata model_kwargs {kwargs} do not build {meta.model}: "
            f"{_first_cause(e)}"
        ) from None


def _read_safetensors(path: Path) -> tuple[ModelMeta, dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = read_meta(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise VislabError(f"cannot read {path}: {e}") from None
    return meta, state


def onnx_providers(device: torch.device) -> list:
    """ONNX Runtime's execution providers for a device: its CUDA provider (from the
    onnxruntime-gpu package) on a CUDA device, else the CPU's."""
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    import onnxruntime as ort

    if device.type != "cuda" or "CUDAExecutionProvider" not in ort.get_available_providers():
        raise VislabError(
            f"--device {device}: this ONNX Runtime has no provider for it (for CUDA: pip "
            "install onnxruntime-gpu); use --engine torch, or --device cpu"
        )
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


class OnnxModel(nn.Module):
    """An exported model run by ONNX Runtime, called like the PyTorch model it came from:
    inputs and outputs on the CPU, the work on the provider's device.

    A segmenter's graph takes its window's size (export.py); a smaller input (a window clipped
    to a tile smaller than it) is padded at the bottom and right with zeros, the normalised
    mean colour, and its logits cropped back. So on tiles smaller than the window its masks
    can differ from PyTorch's, which sees the clipped window as it is."""

    def __init__(self, path: Path, task: str, device: torch.device):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        providers = onnx_providers(device)
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.task = task
        # the graph's input height and width: numbers, or names where they are dynamic
        self.input_hw = self.session.get_inputs()[0].shape[-2:]

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        gh, gw = self.input_hw
        pad = self.task == "segmentation" and isinstance(gh, int) and (h, w) != (gh, gw)
        if pad:
            if h > gh or w > gw:
                raise VislabError(f"this ONNX segmenter takes windows of {gw}x{gh}; got {w}x{h}")
            x = F.pad(x, (0, gw - w, 0, gh - h))
        (y,) = self.session.run(None, {"image": x.float().contiguous().numpy()})
        y = torch.from_numpy(y)
        if pad:  # the logits of the input's own part, at the graph's output scale
            oh, ow = y.shape[-2:]
            y = y[..., : max(1, round(h * oh / gh)), : max(1, round(w * ow / gw))]
        return {"out": y} if self.task == "segmentation" else y


def _load_onnx(path: Path, device: torch.device) -> tuple[nn.Module, ModelMeta]:
    if not path.is_file():
        raise VislabError(f"model file not found: {path}")
    onnx_providers(device)  # its own error first, not one about the file
    try:
        model = OnnxModel(path, task="", device=device)
    except Exception as e:  # ONNX Runtime's errors (InvalidProtobuf, Fail, ...) share no base
        raise VislabError(f"cannot read {path}: {_first_cause(e)}") from None
    text = model.session.get_modelmeta().custom_metadata_map.get(META_KEY)
    meta = exported_meta(path, text, "onnx")
    model.task = meta.task
    return model, meta
