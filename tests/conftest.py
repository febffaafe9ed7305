"""Shared fixtures: tiny generated data in the course layouts, and the real data's location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# no test fetches weights from the internet: the download tests serve them on loopback and
# lift these for themselves (huggingface_hub reads its flag once, when first imported)
os.environ["VISLAB_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

from vislab.data.synthetic import write_p1_layout  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _find_data() -> Path:
    """$VISLAB_DATA, else the nearest shared/data beside the checkout or above it: ../shared/data
    for a checkout in the work folder, and the same folder for a clean clone made deeper."""
    if "VISLAB_DATA" in os.environ:
        return Path(os.environ["VISLAB_DATA"])
    for parent in REPO.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return REPO.parent / "shared" / "data"  # absent: the integration tests skip


DATA = _find_data()
REAL_P1 = DATA / "dlcv-p1"
REAL_P2 = DATA / "dlcv-p2"


def pytest_report_header(config) -> str:
    state = "present" if REAL_P1.is_dir() and REAL_P2.is_dir() else "absent, integration skipped"
    return f"vislab real data: {DATA} ({state})"


@pytest.fixture(scope="session")
def p1_tiny(tmp_path_factory) -> Path:
    """p1_data layout: 4 classes, 16 train and 4 val images each, 32x32."""
    return write_p1_layout(tmp_path_factory.mktemp("p1"), num_classes=4, per_class=16)


def _cli_train(recipe: str, data: Path, out: Path, epochs: int, sets: list[str], extra) -> list:
    args = ["train", str(REPO / "configs" / recipe), "--data", str(data), "--out", str(out)]
    args += ["--epochs", str(epochs)]
    for s in [*sets, "trainer.threads=1", "trainer.progress_bar=false"]:
        args += ["--set", s]
    return [*args, *extra]


def train_args(data: Path, out: Path, epochs: int = 2, *extra: str) -> list[str]:
    """CLI arguments for a quick, single-threaded, deterministic Model A run."""
    return _cli_train(
        "p1_model_a.yaml", data, out, epochs, ["model.num_classes=4", "data.batch_size=16"], extra
    )


def seg_train_args(data: Path, out: Path, epochs: int = 2, *extra: str) -> list[str]:
    """CLI arguments for a quick, single-threaded LR-ASPP run on tiles downscaled to 32x32."""
    return _cli_train("p2_cpu.yaml", data, out, epochs, ["data.image_size=32"], extra)


@pytest.fixture(scope="session")
def p2_tiny(tmp_path_factory) -> Path:
    """p2_data layout: 16 train and 4 validation tiles of 64x64."""
    from vislab.data.synthetic import write_p2_layout

    return write_p2_layout(tmp_path_factory.mktemp("p2"), n_train=16, n_val=4, size=64)


def jolted_checkpoint(src: Path, dst: Path) -> Path:
    """src with noise added to its learned weights, so that its predictions change with a flip
    (a tiny run's model predicts one class whatever the view); written to dst."""
    import torch

    ckpt = torch.load(src, weights_only=True)
    gen = torch.Generator().manual_seed(0)
    for key, value in ckpt["state_dict"].items():
        if value.is_floating_point() and "running" not in key:  # not the norms' statistics
            scale = value.std() if value.dim() > 1 else 0.1  # kernels / scales and biases
            value += torch.randn(value.shape, generator=gen) * scale
    torch.save(ckpt, dst)
    return dst


def seg_meta(cfg, class_weights: list[float] | None = None):
    """The metadata a SegmentationTask of cfg is built with, as training would make it."""
    from vislab.course.landcover import CLASSES
    from vislab.infer.meta import ModelMeta

    return ModelMeta(
        task="segmentation",
        model=cfg.model.name,
        num_classes=len(CLASSES),
        model_kwargs={},
        classes=list(CLASSES),
        mean=[0.5] * 3,
        std=[0.25] * 3,
        image_size=[256, 256],
        class_weights=class_weights,
    )
