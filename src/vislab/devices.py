"""Where work runs: the device a command predicts on (`--device`), the autocast it runs under
(`--precision`), and what a recipe's trainer asks of this machine, checked before any data is
read."""

from __future__ import annotations

import contextlib
import os
import re

import torch
import torch.nn as nn

from vislab.errors import VislabError

DEVICES = "auto, cpu, cuda, cuda:N or mps"
PRECISIONS = ("32", "bf16", "fp16")  # what --precision takes


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are (the CPU for a model without any, as ONNX Runtime's)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _cuda_missing() -> str:
    built = torch.version.cuda
    return (
        f"this machine has no CUDA GPU (torch {torch.__version__}, "
        + (f"built for CUDA {built}" if built else "a CPU-only build")
        + ")"
    )


def _cuda_index(index: int, what: str) -> None:
    n = torch.cuda.device_count()
    if index >= n:
        have = ", ".join(f"cuda:{i}" for i in range(n))
        raise VislabError(f"{what}: this machine has {n} CUDA GPU(s) ({have})")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str, what: str = "--device") -> torch.device:
    """The device `name` (DEVICES) stands for on this machine; a GPU asked for where there is
    none is a one-line error naming what the machine has."""
    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise VislabError(f"{what} mps: this machine has no Apple GPU (MPS); use cpu")
        return torch.device("mps")
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if m is None:
        raise VislabError(f"{what} {name}: not one of {DEVICES}")
    if not torch.cuda.is_available():
        raise VislabError(f"{what} {name}: {_cuda_missing()}; use --device cpu")
    index = int(m.group(1) or 0)
    _cuda_index(index, f"{what} {name}")
    return torch.device("cuda", index)


def autocast(precision: str, device: torch.device):
    """The autocast context of an inference precision (PRECISIONS) on device: fp32 (none),
    bf16 on the CPU or a GPU that has it, fp16 on a GPU."""
    if precision == "32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return torch.autocast(device.type, dtype=torch.float16)


def check_precision(precision: str, device: torch.device) -> None:
    """A precision the device cannot run is refused before anything is loaded."""
    if precision not in PRECISIONS:
        raise VislabError(f"--precision {precision}: not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise VislabError("--precision fp16 runs on a GPU; on the CPU use 32 or bf16")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        raise VislabError(f"--precision bf16: {name} has no bf16; use fp16 or 32")


def trainer_accelerator(accelerator: str) -> str:
    """What Lightning's accelerator setting resolves to here: cuda, mps or cpu."""
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    return {"gpu": "cuda"}.get(accelerator, accelerator)


def check_trainer(
    accelerator: str, devices, precision: str, sync_batchnorm: bool = False, num_nodes: int = 1
) -> None:
    """trainer.accelerator, trainer.devices, trainer.precision and trainer.sync_batchnorm
    against this machine: one line, before weights are fetched or data decoded, where
    Lightning would fail later with a traceback (or run fp16 on a CPU that cannot), or leave
    a setting unused (sync_batchnorm in one process)."""
    kind = trainer_accelerator(accelerator)
    if kind not in ("cpu", "cuda", "mps"):
        raise VislabError(
            f"config key trainer.accelerator: {accelerator!r} is not one of auto, cpu, gpu, "
            "cuda, mps"
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise VislabError(
            f"config key trainer.accelerator: {accelerator} asked for, but {_cuda_missing()}; "
            "use trainer.accelerator=cpu (or auto)"
        )
    if kind == "mps" and not _mps_available():
        raise VislabError(
            f"config key trainer.accelerator: {accelerator} asked for, but this machine has no "
            "Apple GPU (MPS); use trainer.accelerator=cpu (or auto)"
        )
    if kind == "cpu" and isinstance(devices, list):
        raise VislabError(
            f"config key trainer.devices: {devices} is a list of GPU indices, and this run is "
            "on the CPU: give a number of processes (1, or more for DDP over gloo) or auto"
        )
    if kind == "cuda":
        indices = devices if isinstance(devices, list) else None
        if isinstance(devices, int) and devices > torch.cuda.device_count():
            indices = [devices - 1]
        for i in indices or []:
            _cuda_index(int(i), f"config key trainer.devices: {devices}")
    if sync_batchnorm and kind == "cpu":
        raise VislabError(
            "config key trainer.sync_batchnorm: torch's SyncBatchNorm runs on GPUs only; on "
            "the CPU each process normalises its own batch (leave it false)"
        )
    if sync_batchnorm and num_nodes == 1:
        if devices == "auto":
            devices = torch.cuda.device_count() if kind == "cuda" else 1
        if (len(devices) if isinstance(devices, list) else devices) == 1:
            raise VislabError(
                "config key trainer.sync_batchnorm: one process trains (one GPU on one "
                "machine), with no other batch to share statistics with, so Lightning would "
                "leave it unused: leave it false, or train on more devices"
            )
    if precision == "16-mixed" and kind == "cpu":
        raise VislabError(
            "config key trainer.precision: 16-mixed (fp16 with gradient scaling) is for GPUs; "
            "on the CPU use bf16-mixed or 32-true"
        )
    if precision == "bf16-mixed" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise VislabError(
            f"config key trainer.precision: {torch.cuda.get_device_name(0)} has no bf16; use "
            "16-mixed (fp16 with gradient scaling) or 32-true"
        )


# what tells a process that a multi-node launcher started it (torchrun, Slurm, LSF, MPI, or
# Lightning's own NODE_RANK + MASTER_ADDR)
NODE_LAUNCHERS = ("GROUP_RANK", "NODE_RANK", "SLURM_NTASKS", "LSB_JOBID", "OMPI_COMM_WORLD_SIZE")


def check_processes(devices, num_nodes: int, strategy: str) -> None:
    """trainer.devices, trainer.num_nodes and trainer.strategy: one line where Lightning would
    fail with a traceback, or wait for ever for nodes that no launcher will start."""
    from lightning.pytorch.strategies import StrategyRegistry

    strategies = ["auto", *sorted(StrategyRegistry.available_strategies())]
    # ddp_spawn, ddp_fork, ddp_notebook: processes started by multiprocessing run the fit
    # alone, away from the process that holds the run folder's lock and prints the result
    spawned = {
        name
        for name in strategies[1:]
        if StrategyRegistry[name]["init_params"].get("start_method") in ("spawn", "fork")
    }
    if strategy in spawned:
        raise VislabError(
            f"config key trainer.strategy: {strategy} starts its processes with "
            "multiprocessing, which vislab does not run (each process is a whole vislab "
            "train: the run folder's lock, the data, the result); use ddp, where Lightning "
            "starts them, or torchrun"
        )
    if strategy not in strategies:
        shown = [s for s in strategies if "find_unused" not in s and s not in spawned]
        raise VislabError(
            f"config key trainer.strategy: {strategy!r} is not one of Lightning's strategies "
            f"({', '.join(shown)}, ...)"
        )
    ok = devices == "auto" or (isinstance(devices, int) and not isinstance(devices, bool))
    ok = ok and (devices == "auto" or devices >= 1)
    if isinstance(devices, list):
        ok = bool(devices) and all(isinstance(i, int) and i >= 0 for i in devices)
        ok = ok and len(set(devices)) == len(devices)
    if not ok:
        raise VislabError(
            f"config key trainer.devices: {devices!r} is not auto, a number of devices from 1, "
            "or a list of distinct device indices"
        )
    if num_nodes > 1 and not any(os.environ.get(k) for k in NODE_LAUNCHERS):
        raise VislabError(
            f"config key trainer.num_nodes: {num_nodes} machines, but no multi-node launcher "
            "started this process (torchrun, srun, or NODE_RANK and MASTER_ADDR set on each); "
            "it would wait for ever for the others"
        )
