"""Where work runs: `--device` on the commands that run a model, the trainer's accelerator,
devices and precision checked against the machine before any data is read, and augmentation
that draws the same on any device. CI has no GPU: the machine's GPUs are simulated where a
test needs some, and the one comparison that needs a real one is skipped without it."""

from __future__ import annotations

import pytest
import torch
from conftest import seg_train_args, train_args

from vislab.cli import main
from vislab.data.augment import mix_batch, random_crop_flip, random_tile_augment
from vislab.devices import check_precision, check_trainer, resolve_device
from vislab.errors import VislabError


def fails(capsys, argv: list, message: str) -> str:
    """The command exits 2 with one error line holding message; returns everything printed."""
    assert main([str(a) for a in argv]) == 2
    out = capsys.readouterr()
    errors = [line for line in out.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], out.err
    assert "Traceback" not in out.err
    return out.out + out.err


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with cuda:0 and cuda:1 as far as the checks can tell (nothing runs on them)."""
    _simulate_two_gpus(monkeypatch)


def _simulate_two_gpus(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")


def test_device_names_resolve_to_what_the_machine_has(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(VislabError, match=f"--device {name}: this machine has no CUDA GPU"):
            resolve_device(name)
    with pytest.raises(VislabError, match="not one of auto, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu0")


def test_gpu_indices_are_checked_against_the_gpus_there(two_gpus):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(VislabError, match=r"cuda:2: this machine has 2 CUDA GPU\(s\) \(cuda:0, "):
        resolve_device("cuda:2")


def test_precisions_a_device_cannot_run_are_refused(two_gpus):
    check_precision("bf16", torch.device("cpu"))  # CPU autocast has bf16
    with pytest.raises(VislabError, match="fp16 runs on a GPU"):
        check_precision("fp16", torch.device("cpu"))
    check_precision("fp16", torch.device("cuda", 0))
    with pytest.raises(VislabError, match="Tesla T4 has no bf16; use fp16"):
        check_precision("bf16", torch.device("cuda", 0))


def test_trainer_settings_are_checked_against_the_machine(no_gpu, monkeypatch):
    check_trainer("auto", "auto", "32-true")
    check_trainer("cpu", 2, "bf16-mixed")
    for accelerator in ("gpu", "cuda"):
        with pytest.raises(VislabError, match=f"{accelerator} asked for, but this machine has"):
            check_trainer(accelerator, 1, "32-true")
    with pytest.raises(VislabError, match="16-mixed .* is for GPUs"):
        check_trainer("auto", "auto", "16-mixed")
    with pytest.raises(VislabError, match="'tpu' is not one of"):
        check_trainer("tpu", 1, "32-true")
    with pytest.raises(VislabError, match="sync_batchnorm: torch's SyncBatchNorm runs on GPUs"):
        check_trainer("cpu", 2, "32-true", sync_batchnorm=True)
    for accelerator, devices in (("cpu", [0]), ("cpu", [1]), ("auto", [0])):
        with pytest.raises(VislabError, match=r"trainer.devices: \[\d\] is a list of GPU indices"):
            check_trainer(accelerator, devices, "32-true")


def test_trainer_gpus_and_precision_against_two_gpus(two_gpus):
    check_trainer("gpu", 2, "16-mixed", sync_batchnorm=True)  # fp16 + scaling: a T4's
    check_trainer("auto", "auto", "32-true", sync_batchnorm=True)  # both GPUs
    check_trainer("gpu", 1, "32-true", sync_batchnorm=True, num_nodes=2)  # one on each of 2
    for devices in (1, [1]):  # one process: nothing to sync with, Lightning leaves it unused
        with pytest.raises(VislabError, match="sync_batchnorm: one process trains"):
            check_trainer("gpu", devices, "32-true", sync_batchnorm=True)
    check_trainer("gpu", [1], "32-true")
    for devices in (3, [0, 2]):
        with pytest.raises(VislabError, match=r"trainer.devices.*has 2 CUDA GPU\(s\)"):
            check_trainer("gpu", devices, "32-true")
    with pytest.raises(VislabError, match="Tesla T4 has no bf16; use 16-mixed"):
        check_trainer("auto", 1, "bf16-mixed")


def test_a_gpu_recipe_here_is_one_line_before_any_data(no_gpu, p1_tiny, tmp_path, capsys):
    run = tmp_path / "run"
    for setting, message in (
        ("trainer.accelerator=gpu", "trainer.accelerator: gpu asked for, but this machine"),
        ("trainer.precision=16-mixed", "trainer.precision: 16-mixed"),
    ):
        printed = fails(capsys, train_args(p1_tiny, run, 1, "--set", setting), message)
        assert "data:" not in printed  # refused before the data was decoded
        assert not (run / "checkpoints").exists()


@pytest.mark.parametrize(
    "setting, message",
    [
        # one machine: rank 0 would wait for the second node's processes for ever
        ("trainer.num_nodes=2", "trainer.num_nodes: 2 machines, but no multi-node launcher"),
        ("trainer.strategy=bogus", "trainer.strategy: 'bogus' is not one of Lightning's"),
        # the fit would run in processes of its own, away from the run folder's lock
        ("trainer.strategy=ddp_spawn", "trainer.strategy: ddp_spawn starts its processes with"),
        ("trainer.strategy=ddp_fork", "trainer.strategy: ddp_fork starts its processes with"),
        ("trainer.devices=-1", "trainer.devices: -1 is not auto, a number of devices from 1"),
        ("trainer.devices=abc", "trainer.devices: 'abc' is not auto"),
        ("trainer.devices=[0,0]", "trainer.devices: [0, 0] is not auto"),
        ("trainer.threads=100000", "trainer.threads: 100000 is more than the"),
        ("seed=99999999999999999999", "seed: 99999999999999999999 must be <= 4294967295"),
        ("data.image_size=100000", "data.image_size: 100000 must be <= 13377"),  # 30 GB a photo
    ],
)
def test_settings_that_crash_or_hang_are_one_line_before_any_data(
    setting, message, p1_tiny, tmp_path, capsys, monkeypatch
):
    from vislab.devices import NODE_LAUNCHERS

    for name in NODE_LAUNCHERS:
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "run"
    printed = fails(capsys, train_args(p1_tiny, run, 1, "--set", setting), message)
    assert "data:" not in printed
    assert not (run / "checkpoints").exists()


def test_gpu_indices_on_the_cpu_are_one_line_before_any_data(p1_tiny, tmp_path, capsys):
    run = tmp_path / "run"
    sets = ["--set", "trainer.accelerator=cpu", "--set", "trainer.devices=[0]"]
    message = "trainer.devices: [0] is a list of GPU indices, and this run is on the CPU"
    assert "data:" not in fails(capsys, train_args(p1_tiny, run, 1, *sets), message)
    assert not (run / "checkpoints").exists()


def test_predict_embed_progress_export_and_report_take_a_device(
    no_gpu, p1_tiny, p2_tiny, tmp_path, capsys
):
    assert main(train_args(p1_tiny, tmp_path / "cls", 1)) == 0
    assert main(seg_train_args(p2_tiny, tmp_path / "seg", 1)) == 0
    ckpt = tmp_path / "cls" / "checkpoints" / "best.ckpt"
    images = p1_tiny / "val_50"
    predict = ["predict", "--ckpt", ckpt, "--images", images, "--threads", "1"]
    cpu = tmp_path / "cpu.csv"
    assert main([str(a) for a in [*predict, "--out", cpu, "--device", "cpu"]]) == 0
    assert "pytorch on cpu" in capsys.readouterr().out
    auto = tmp_path / "auto.csv"
    assert main([str(a) for a in [*predict, "--out", auto]]) == 0  # auto: the CPU here
    assert auto.read_text() == cpu.read_text()
    missing = tmp_path / "never.csv"
    fails(capsys, [*predict, "--out", missing, "--device", "cuda"], "no CUDA GPU")
    fails(capsys, [*predict, "--out", missing, "--device", "cpu", "--precision", "fp16"], "fp16")
    assert not missing.exists()

    embed = ["embed", tmp_path / "cls", "--out", tmp_path / "embed"]
    assert main([str(a) for a in [*embed, "--device", "cpu"]]) == 0
    assert (tmp_path / "embed" / "tsne.png").is_file()
    fails(capsys, [*embed, "--device", "cuda:0"], "--device cuda:0: this machine has no CUDA")
    progress = ["progress", tmp_path / "seg", "--out", tmp_path / "p.png"]
    assert main([str(a) for a in [*progress, "--device", "cpu"]]) == 0
    assert (tmp_path / "p.png").is_file()
    fails(capsys, [*progress, "--device", "cuda"], "--device cuda: this machine has no CUDA")
    export = [
        "export",
        "--ckpt",
        ckpt,
        "--format",
        "safetensors",
        "--out",
        tmp_path / "m.safetensors",
    ]
    fails(capsys, [*export, "--device", "cuda"], "no CUDA GPU")
    assert main([str(a) for a in [*export, "--device", "cpu"]]) == 0
    report = ["report", tmp_path / "cls", "--out", tmp_path / "rep"]
    fails(capsys, [*report, "--device", "cuda"], "no CUDA GPU")
    assert not (tmp_path / "rep").exists()


def _augmented(device: torch.device) -> list[torch.Tensor]:
    x = torch.rand(6, 3, 12, 12, generator=torch.Generator().manual_seed(1)).to(device)
    y = (x[:, 0] * 5).to(torch.uint8)
    g = torch.Generator().manual_seed(7)  # the training step's: a CPU generator on any device
    crops = random_crop_flip(x, 3, True, g)
    mixed, order, lam = mix_batch(x, 0.4, 1.0, g)
    tiles = random_tile_augment(x, y, 8, True, True, True, g)
    return [t.cpu() for t in (crops, mixed, order, torch.tensor(lam), *tiles)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU to compare with")
def test_augmentation_draws_the_same_on_a_gpu_as_on_the_cpu():
    for a, b in zip(_augmented(torch.device("cpu")), _augmented(torch.device("cuda")), strict=True):
        assert torch.equal(a, b)


def test_augmentation_follows_the_generator_not_the_device():
    """A CPU generator drives the draws whatever the batch's device: the same generator
    state, the same crops, flips, mixes and tile transforms."""
    first, again = _augmented(torch.device("cpu")), _augmented(torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    x = torch.rand(6, 3, 12, 12)
    other = random_crop_flip(x, 3, True, torch.Generator().manual_seed(8))
    assert not torch.equal(other, random_crop_flip(x, 3, True, torch.Generator().manual_seed(7)))


def test_the_training_generator_is_a_cpu_one_keyed_by_seed_epoch_and_batch():
    from vislab.infer.meta import ModelMeta
    from vislab.train.classification import ClassificationTask

    meta = ModelMeta("classification", "model_a", 4, {}, list("abcd"), [0.5] * 3, [0.2] * 3, None)
    task = ClassificationTask(meta, model="model_a", seed=3)
    draws = [torch.rand(4, generator=task._generator(b)) for b in (0, 1, 0)]
    assert task._generator(0).device == torch.device("cpu")
    assert torch.equal(draws[0], draws[2]) and not torch.equal(draws[0], draws[1])


def test_an_onnx_model_on_a_gpu_needs_onnx_runtimes_cuda_provider(
    p1_tiny, tmp_path, capsys, monkeypatch
):
    import onnxruntime

    assert "CUDAExecutionProvider" not in onnxruntime.get_available_providers()  # CPU build
    assert main(train_args(p1_tiny, tmp_path / "cls", 1)) == 0
    onnx = tmp_path / "m.onnx"
    ckpt = tmp_path / "cls" / "checkpoints" / "best.ckpt"
    assert main(["export", "--ckpt", str(ckpt), "--format", "onnx", "--out", str(onnx)]) == 0
    _simulate_two_gpus(monkeypatch)  # the model's GPU, as far as the checks can tell
    predict = ["predict", "--ckpt", onnx, "--images", p1_tiny / "val_50", "--out", tmp_path / "p"]
    fails(capsys, [*predict, "--device", "cuda:1"], "pip install onnxruntime-gpu")
