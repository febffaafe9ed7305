"""Pretrained weights fetched the way the libraries fetch them, against loopback servers
(never the internet): timm's through a Hugging Face hub stand-in at $HF_ENDPOINT into
$HF_HOME, then from that cache with HF_HUB_OFFLINE=1, and one line naming the model when
neither has them; torchvision's as a served .pth into the torch hub cache, its hash checked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import _cli_train
from weight_servers import serve

from vislab.cli import main
from vislab.errors import VislabError

REPO_ID = "timm/resnet18.a1_in1k"  # timm's default weights of resnet18


def _served_resnet18() -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(7)
    return {k: v.clone() for k, v in timm.create_model("resnet18").state_dict().items()}


def _vislab(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """vislab in a child process: huggingface_hub reads its environment once, at import."""
    return subprocess.run(
        [sys.executable, "-m", "vislab", *args], env=env, capture_output=True, text=True
    )


def _env(tmp_path, endpoint: str, offline: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VISLAB_OFFLINE"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"))
    env.update(TORCH_HOME=str(tmp_path / "torch"), HF_HUB_OFFLINE="1" if offline else "0")
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    return env


def test_timm_weights_from_the_hub_then_its_cache_then_one_line(p1_tiny, tmp_path):
    from safetensors.torch import save

    served = _served_resnet18()
    sets = ["model.name=timm/resnet18", "model.num_classes=4", "data.batch_size=16"]
    # stem and layer1 frozen: after training they still hold the served tensors exactly
    sets += ["model.kwargs={weights: imagenet, input_size: 32, frozen_stages: 2}"]
    files = {f"/{REPO_ID}/model.safetensors": save(served)}

    def train(out: str, env):
        return _vislab(_cli_train("p1_model_a.yaml", p1_tiny, tmp_path / out, 1, sets, []), env)

    with serve(files) as (url, hits):
        first = train("online", _env(tmp_path, url, offline=False))
        assert first.returncode == 0, first.stderr[-2000:]
        assert any(h.startswith("GET") and "model.safetensors" in h for h in hits)
    state = torch.load(tmp_path / "online" / "checkpoints" / "best.ckpt", weights_only=True)
    trained = state["state_dict"]
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv2.weight"):
        assert torch.equal(trained[f"model.net.{key}"], served[key]), key
    assert not torch.equal(
        trained["model.net.layer4.1.conv2.weight"], served["layer4.1.conv2.weight"]
    )
    # the server is gone: the Hugging Face cache alone serves the second run
    again = train("cached", _env(tmp_path, "http://127.0.0.1:9", offline=True))
    assert again.returncode == 0, again.stderr[-2000:]
    # neither: one line naming the model and where it looked, before any data is read
    (tmp_path / "empty").mkdir()
    env = _env(tmp_path / "empty", "http://127.0.0.1:9", offline=True)
    failed = train("none", env)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    line = failed.stderr.strip().splitlines()[-1]
    assert "timm/resnet18: no weights 'imagenet' here" in line and "HF_HUB_OFFLINE" in line
    assert "resolve/main/model.safetensors" in line and "data:" not in failed.stdout


def test_timm_hub_that_fails_is_one_line(p1_tiny, tmp_path):
    sets = ["model.name=timm/resnet18", "model.num_classes=4"]
    sets += ["model.kwargs={weights: imagenet, input_size: 32}"]
    with serve({}) as (url, hits):  # a hub without the file
        args = _cli_train("p1_model_a.yaml", p1_tiny, tmp_path / "r", 1, sets, [])
        done = _vislab(args, _env(tmp_path, url, offline=False))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "timm/resnet18: no weights 'imagenet' here" in done.stderr
    assert hits  # it asked the stand-in, not the internet


@pytest.fixture
def torchvision_served(monkeypatch, tmp_path):
    """torchvision's ResNet-18 weights served on loopback, its URL pointed there; yields
    (the served state dict, the bytes served, the requests)."""
    import hashlib
    import io

    from torchvision.models import ResNet18_Weights, resnet18

    torch.manual_seed(3)
    state = resnet18(weights=None).state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"  # torch hub's hash rule
    files = {f"/models/{name}": data}
    monkeypatch.delenv("VISLAB_OFFLINE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with serve(files) as (url, hits):
        monkeypatch.setattr(ResNet18_Weights.IMAGENET1K_V1.value, "url", f"{url}/models/{name}")
        yield state, files, hits


def test_torchvision_weights_download_into_the_hub_cache(torchvision_served, tmp_path, capsys):
    from vislab.models import create_model

    state, files, hits = torchvision_served
    model = create_model("torchvision/resnet18", num_classes=5, weights="imagenet")
    body = model.net.body
    for key in ("conv1.weight", "layer3.0.bn1.running_var", "layer4.1.conv2.weight"):
        assert torch.equal(body.state_dict()[key], state[key]), key
    assert model.net.head.out_features == 5
    cached = list((tmp_path / "torch" / "hub" / "checkpoints").glob("resnet18-*.pth"))
    assert len(cached) == 1 and cached[0].read_bytes() == next(iter(files.values()))
    n = len(hits)
    create_model("torchvision/resnet18", num_classes=5, weights="imagenet")
    assert len(hits) == n  # the second build reads the cache


def test_torchvision_download_with_a_wrong_hash_is_refused(torchvision_served, tmp_path):
    from vislab.models import create_model

    state, files, hits = torchvision_served
    path = next(iter(files))
    data = files[path]
    files[path] = data[:100] + bytes([data[100] ^ 1]) + data[101:]  # not what its name says
    with pytest.raises(VislabError, match="torchvision/resnet18: no weights 'imagenet' here"):
        create_model("torchvision/resnet18", num_classes=5, weights="imagenet")
    assert not list((tmp_path / "torch" / "hub" / "checkpoints").glob("resnet18-*.pth"))


def test_offline_without_the_file_names_model_place_and_url(tmp_path, monkeypatch):
    from vislab.models import create_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(VislabError) as e:
        create_model("torchvision/resnext101_64x4d", num_classes=5, weights="imagenet")
    msg = str(e.value)
    assert "torchvision/resnext101_64x4d: no weights 'imagenet' here" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "resnext101_64x4d-173b62eb.pth") in msg
    assert "https://download.pytorch.org/models/resnext101_64x4d-173b62eb.pth" in msg
    assert "VISLAB_OFFLINE is set" in msg and "\n" not in msg


@pytest.mark.parametrize("decoder", ["unet", "deeplabv3plus"])
def test_decoders_over_a_timm_encoder_train_and_predict(p2_tiny, tmp_path, decoder):
    out = tmp_path / decoder
    sets = [f"model.name={decoder}", "model.kwargs={encoder: timm/resnet18}"]
    sets += ["data.image_size=64", "data.batch_size=4"]
    assert main(_cli_train("p2_lite.yaml", p2_tiny, out, 1, sets, [])) == 0
    masks = tmp_path / f"{decoder}_masks"
    ckpt = str(out / "checkpoints" / "best.ckpt")
    images = str(p2_tiny / "validation")
    assert main(["predict", "--ckpt", ckpt, "--images", images, "--out", str(masks)]) == 0
    predicted = sorted(p.name for p in masks.glob("*.png"))
    assert predicted == sorted(
        p.name.replace("_sat.jpg", ".png") for p in (p2_tiny / "validation").glob("*_sat.jpg")
    )
