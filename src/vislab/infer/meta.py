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
        for k in ("mean", "std", "image_size", "scale", "window", "class_weights"):  # or tuples
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
        if not isinstance(self.model, str) or not self.model:
            raise bad("model", f"a model name, not {self.model!r}")
        most = MAX_CLASSES[self.task]
        k = self.num_classes
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= most:
            raise bad("num_classes", f"an integer from 1 to {most} for {self.task}, not {k!r}")
        if not isinstance(self.classes, list) or len(self.classes) != k:
            raise bad("classes", f"a list of num_classes ({k}) names")
        odd = next((c for c in self.classes if not isinstance(c, str) or not c.strip()), None)
        if odd is not None:
            raise bad("classes", f"names (non-empty text), not {odd!r}")
        if len(set(self.classes)) != k:
            seen: set[str] = set()
            twice = next(c for c in self.classes if c in seen or seen.add(c))
            raise bad("classes", f"distinct names; {twice!r} is listed twice")
        if not isinstance(self.model_kwargs, dict) or not all(
            isinstance(key, str) for key in self.model_kwargs
        ):
            raise bad("model_kwargs", "a mapping of argument names")
        problem = normalisation_problem(self.mean, self.std)
        if problem:
            raise VislabError(f"{where}: vislab metadata {problem}")
        most = max_pixels()  # an image (or window) no larger than images may be
        for name in ("image_size", "window"):
            size = getattr(self, name)
            if size is not None and not (_pair(size, int) and size[0] * size[1] <= most):
                raise bad(
                    name,
                    f"two positive integers (height, width), {most:,} pixels at most (what "
                    f"Pillow decodes), not {size!r}",
                )
        if (self.scale is None) != (self.window is None):
            raise bad("scale and window", "both given or both left out")
        side = math.isqrt(most)
        if self.scale is not None and not (
            _pair(self.scale, (int, float)) and all(v <= side for v in self.scale)
        ):
            raise bad("scale", f"two positive numbers (height, width) of at most {side}")
        w = self.class_weights
        if w is not None and not (
            isinstance(w, list) and len(w) == k and all(_number(v) and v >= 0 for v in w) and any(w)
        ):
            raise bad("class_weights", f"{k} finite weights (one per class), none negative")
        e = self.epoch
        if e is not None and not (isinstance(e, int) and not isinstance(e, bool) and e >= 0):
            raise bad("epoch", f"an integer from 0, not {e!r}")
        for name in ("vislab_version", "source_sha256", "run_id"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise bad(name, f"text, not {getattr(self, name)!r}")
        for name in ("dataset", "config"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                raise bad(name, "a mapping")

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
    """value is a list of two positive (finite) numbers of kind."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, kind) and _number(v) and v > 0 for v in value)
    )


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def max_pixels() -> int:
    """The most pixels of an image: what Pillow decodes (twice its MAX_IMAGE_PIXELS; past it a
    file is refused as a decompression bomb), so a model's input size is bounded as images are
    (and as data.image_size is: its largest side, 13,377, squared passes it)."""
    from PIL import Image

    return 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)  # None (unbounded): Pillow's default


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
    the two export formats are read without torch, a checkpoint with
    torch.load(weights_only=True)."""
    from vislab.fileio import require_file

    path = Path(path)
    require_file(path, "model file")
    if path.suffix == ".onnx":
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf's DecodeError and onnx's own share no base
            raise VislabError(f"cannot read {path}: {e}") from None
        props = {p.key: p.value for p in model.metadata_props}
        return exported_meta(path, props.get(META_KEY), "onnx")
    if path.suffix == ".safetensors":
        return safetensors_meta(path)
    from vislab.infer.checkpoint import read_checkpoint

    return ModelMeta.from_dict(read_checkpoint(path)[META_KEY], path)


def safetensors_meta(path: Path) -> ModelMeta:
    """The metadata of a .safetensors file, through the safetensors library's own header
    checks (a header length past the file or its 100 MB limit, a header that is no JSON
    object: one line), without torch."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "np") as f:
            text = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError) as e:
        raise VislabError(f"cannot read {path}: not a safetensors file ({e})") from None
    return exported_meta(path, text, "safetensors")
