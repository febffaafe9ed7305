"""The metadata every vislab model file carries: which model to build, its classes, and how its
inputs were preprocessed. Training writes it into each checkpoint; `vislab export` writes its
reduced form (`for_export`) as JSON into safetensors and ONNX files; every reader gets it back
as a `ModelMeta` through `from_dict`, which names the fields a file lacks.

No torch here: the record is plain data (checkpoints stay loadable with weights_only=True).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vislab.errors import VislabError

META_KEY = "vislab"  # the metadata entry of checkpoints and of both export formats
# the most classes a model may have: a segmenter's masks hold one byte a pixel (255: ignored)
MAX_CLASSES = {"classification": 100_000, "segmentation": 255}


def normalisation_problem(mean: Any, std: Any) -> str | None:
    """What is wrong with per-channel input statistics (3 finite numbers each, every std
    above 0: a zero std divides by zero), or None."""
    for name, v in (("mean", mean), ("std", std)):
        if not isinstance(v, (list, tuple)) or len(v) != 3:
            return f"{name} must be 3 numbers (R, G, B), got {v!r}"
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return f"{name} must be 3 numbers (R, G, B), got {v!r}"
        if not all(math.isfinite(x) for x in v):
            return f"{name} must be finite, got {v!r}"
    if not all(x > 0 for x in std):
        return f"std must be above 0 in every channel, got {list(std)!r}"
    return None


@dataclass(frozen=True)
class ModelMeta:
    task: str  # "classification" or "segmentation"
    model: str  # a name of the model registry
    num_classes: int
    model_kwargs: dict[str, Any]
    classes: list[str]
    mean: list[float]  # per channel, of inputs scaled to [0, 1]
    std: list[float]
    image_size: list[int] | None  # (H, W) the model was trained at
    class_weights: list[float] | None = None  # of the loss (segmentation)
    # segmentation: the data set spec's stored form (DatasetSpec.to_dict); None in files
    # written before specs existed, which are the course's land-cover set
    dataset: dict[str, Any] | None = None
    # segmentation, how `vislab predict` keeps a tile's size: the factor (H, W) training
    # rescaled the tiles by (data.image_size / their own size), and the window (H, W) the model
    # saw (data.crop_size, else the trained size). None in files written before: those
    # resize each tile whole to image_size
    scale: list[float] | None = None
    window: list[int] | None = None
    config: dict[str, Any] | None = None  # the training recipe (checkpoints only)
    vislab_version: str | None = None
    epoch: int | None = None  # 1-based epoch the weights are from
    source_sha256: str | None = None  # exports: the checkpoint file they came from
    run_id: str | None = None  # the run that trained it (RunFolder.identity); None before ids
    # where the record was read from ("checkpoint", "safetensors", "onnx"); not stored
    format: str = field(default="checkpoint", compare=False)

    @classmethod
    def from_dict(cls, data: Any, where: Any, **extra: Any) -> ModelMeta:
        """The record of a file's stored metadata (where names the file in errors); extra sets
        fields the file keeps elsewhere (epoch, format). Unknown keys are ignored."""
        if not isinstance(data, dict):
            raise VislabError(f"{where}: its vislab metadata is not a mapping")
        names = {f.name for f in dataclasses.fields(cls)}
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [k for k in required if k not in data]
        if missing:
            raise VislabError(f"{where}: its vislab metadata lacks {', '.join(missing)}")
        values = {k: v for k, v in data.items() if k in names and k != "format"}
        for k in ("mean", "std", "image_size", "scale", "window"):  # lists or tuples, as stored
            if isinstance(values.get(k), tuple):
                values[k] = list(values[k])
        values.update(extra)
        meta = cls(**values)
        meta._check(where)
        return meta

    def _check(self, where: Any) -> None:
        def bad(name: str, what: str) -> VislabError:
            return VislabError(f"{where}: vislab metadata {name} must be {what}")

        if self.task not in ("classification", "segmentation"):
            raise bad("task", "classification or segmentation")
        most = MAX_CLASSES[self.task]
        k = self.num_classes
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= most:
            raise bad("num_classes", f"an integer from 1 to {most} for {self.task}, not {k!r}")
        if not isinstance(self.classes, list) or len(self.classes) != k:
            raise bad("classes", f"a list of num_classes ({k}) names")
        if not isinstance(self.model_kwargs, dict):
            raise bad("model_kwargs", "a mapping")
        problem = normalisation_problem(self.mean, self.std)
        if problem:
            raise VislabError(f"{where}: vislab metadata {problem}")
        if self.image_size is not None and not _pair(self.image_size, int):
            raise bad("image_size", "two positive integers (height, width)")
        if (self.scale is None) != (self.window is None):
            raise bad("scale and window", "both given or both left out")
        if self.scale is not None and not _pair(self.scale, (int, float)):
            raise bad("scale", "two positive numbers (height, width)")
        if self.window is not None and not _pair(self.window, int):
            raise bad("window", "two positive integers (height, width)")

    def spec(self):
        """The DatasetSpec of a segmenter: its stored one, else the course's land-cover set
        (what every segmenter was trained on before data sets declared their own)."""
        from vislab.data.spec import DatasetSpec, builtin_spec

        if self.task != "segmentation":
            raise VislabError(f"a {self.task} model has no mask spec")
        if self.dataset is None:
            return builtin_spec("landcover")
        return DatasetSpec.from_dict(self.dataset, "vislab metadata dataset")

    def to_dict(self) -> dict[str, Any]:
        """The stored form: plain data, no format."""
        out = dataclasses.asdict(self)
        del out["format"]
        return out

    def for_export(self, source_sha256: str) -> ModelMeta:
        """What prediction needs, tied to the checkpoint it came from: no training recipe, no
        loss weights, no `weights` kwarg."""
        from vislab.models import without_weights

        return dataclasses.replace(
            self,
            model_kwargs=without_weights(self.model_kwargs),
            class_weights=None,
            config=None,
            source_sha256=source_sha256,
        )


def _pair(value: Any, kind: Any) -> bool:
    """value is a list of two positive numbers of kind."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, kind) and not isinstance(v, bool) and v > 0 for v in value)
    )


def slide_fields(
    trained: list[int], tiles: list[int] | None, crop: int | None
) -> dict[str, list[Any]]:
    """ModelMeta's scale and window for a segmenter trained at trained (H, W) on tiles of their
    own size tiles (H, W; None when training kept them at it), in random crops of crop when
    set."""
    scale = [1.0, 1.0] if tiles is None else [trained[0] / tiles[0], trained[1] / tiles[1]]
    return {"scale": scale, "window": [crop, crop] if crop else list(trained)}


def exported_meta(path: Path, text: Any, fmt: str) -> ModelMeta:
    """The ModelMeta stored as JSON text in an export (fmt: onnx or safetensors)."""
    import json

    if text is None:
        raise VislabError(f"{path} holds no vislab metadata (not written by `vislab export`)")
    try:
        data = json.loads(text)
    except ValueError:
        raise VislabError(f"{path}: its vislab metadata is not JSON") from None
    return ModelMeta.from_dict(data, path, format=fmt)


def read_meta(path: Any) -> ModelMeta:
    """The metadata of a checkpoint, .safetensors or .onnx file, without building its model:
    the two export formats are read without torch (a safetensors header is 8 bytes of length
    and JSON), a checkpoint with torch.load(weights_only=True)."""
    import struct

    path = Path(path)
    if not path.is_file():
        raise VislabError(f"model file not found: {path}")
    if path.suffix == ".onnx":
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf's DecodeError and onnx's own share no base
            raise VislabError(f"cannot read {path}: {e}") from None
        props = {p.key: p.value for p in model.metadata_props}
        return exported_meta(path, props.get(META_KEY), "onnx")
    if path.suffix == ".safetensors":
        import json

        try:
            with path.open("rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
        except (OSError, ValueError, struct.error) as e:
            raise VislabError(f"cannot read {path}: not a safetensors file ({e})") from None
        text = (header.get("__metadata__") or {}).get(META_KEY)
        return exported_meta(path, text, "safetensors")
    from vislab.infer.checkpoint import read_checkpoint

    return ModelMeta.from_dict(read_checkpoint(path)[META_KEY], path)
