"""`vislab submission`: a folder that the course's grader runs as it is, in the course's
environment (Python 3.8, torch 1.12.1, torchvision 0.13.1; timm 0.6.7 for timm's models).

    DIR/hw1_1.sh, DIR/hw1_2.sh   bash hw1_N.sh IMG_DIR OUT, no path written in
    DIR/hw1_infer.py             the entry point (vislab/course/submission/hw1_infer.py)
    DIR/vislab/...               vislab's own model, checkpoint and prediction code (SHIPPED)
    DIR/pN_model.npz, .json      the weights as NumPy arrays (read without unpickling) and
                                 the model's metadata (its data set spec, scale and window);
                                 an ensemble's members: pN_model_1.npz, pN_model_2.npz, ...
    DIR/hw1_download.sh          only for weights over the course's 50 MB: fetched with wget
    DIR/README.md

The folder predicts with the very functions `vislab predict` uses, so its outputs are vislab
predict's (tests/test_submission.py runs it in the course's pinned environment and compares).
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, exclusive, scratch_path, uninterrupted
from vislab.infer.predict import same_classes

PACKAGE = Path(__file__).resolve().parents[2]  # src/vislab
# the vislab files hw1_infer.py imports, copied verbatim; they keep to Python 3.8 and torch
# 1.12 (pyproject.toml holds ruff to that for them)
SHIPPED = (
    "__init__.py",
    "devices.py",
    "errors.py",
    "fileio.py",
    "runtime.py",
    "steps.py",
    "infer/__init__.py",
    "infer/checkpoint.py",
    "infer/meta.py",
    "infer/forward.py",
    "infer/predict.py",
    "data/__init__.py",
    "data/batches.py",
    "data/images.py",
    "data/spec.py",
    "data/store.py",
    "course/__init__.py",
    "course/landcover.py",
    "data/tiles.py",
    "models/__init__.py",
    "models/registry.py",
    "models/classifiers.py",
    "models/library.py",
    "models/decoders.py",
    "models/segmenters.py",
    "models/weights.py",
)
LIMIT = 50_000_000  # bytes: the course's "GitHub's maximum capacity (50 MB)"
# the course's environment (its slides; timm is one of its optional packages)
COURSE_PYTHON = "3.8"
COURSE_PINS = (
    "torch==1.12.1",
    "torchvision==0.13.1",
    "numpy==1.23.1",
    "Pillow==9.2.0",
    "scipy==1.9.1",
    "imageio==2.21.2",
    "matplotlib==3.5.3",
    "timm==0.6.7",
)
PROBLEMS = {"1": "classification", "2": "segmentation"}
OUTPUT = {"1": "OUT_CSV", "2": "OUT_DIR"}


def _weights(ckpt: Path, problem: str) -> tuple[bytes, dict[str, Any], bool]:
    """(the state dict as .npz bytes (weights_npz), inference metadata, needs timm)."""
    from vislab.infer.checkpoint import load_model
    from vislab.infer.export import file_sha256

    if Path(ckpt).suffix == ".onnx":
        raise VislabError(
            f"--p{problem} {ckpt}: an ONNX model cannot run in the course's environment (no "
            "ONNX Runtime there); give the checkpoint or its .safetensors export"
        )
    model, meta = load_model(ckpt)
    if meta.task != PROBLEMS[problem]:
        raise VislabError(
            f"--p{problem} {ckpt} is a {meta.task} model; problem {problem} needs a "
            f"{PROBLEMS[problem]} model"
        )
    timm = any(type(m).__module__.startswith("timm.") for m in model.modules())
    return weights_npz(model.state_dict()), meta.for_export(file_sha256(ckpt)), timm


def weights_npz(state: dict[str, torch.Tensor]) -> bytes:
    """A state dict as NumPy's .npz (one .npy array a tensor, no pickle in it): what the
    course's environment loads with `np.load(allow_pickle=False)`, so reading a downloaded
    weights file runs no code (torch 1.12's torch.load unpickles whatever the file holds).
    bfloat16, which NumPy lacks, is stored as float32 (inference there runs in float32)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for key, value in state.items():
            value = value.detach().cpu().contiguous()
            value = value.float() if value.dtype == torch.bfloat16 else value
            with z.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, value.numpy(), allow_pickle=False)
    return buf.getvalue()


def model_names(problem: str, count: int) -> list[str]:
    """The files' stem of each model of a problem: pN_model alone, pN_model_1, pN_model_2, ...
    for the members of an ensemble (hw1_infer.load reads them in that order)."""
    if count == 1:
        return [f"p{problem}_model"]
    return [f"p{problem}_model_{k}" for k in range(1, count + 1)]


def _script(problem: str, model: str) -> str:
    return f"""#!/usr/bin/env bash
# bash hw1_{problem}.sh IMG_DIR {OUTPUT[problem]}  ({model}, written by `vislab submission`)
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
exec python3 "$here/hw1_infer.py" {problem} "$1" "$2"
"""


def _download_script(urls: dict[str, str]) -> str:
    """urls: {weights file name: its address}."""
    lines = [
        "#!/usr/bin/env bash",
        "# Fetches the weights kept out of the repository (written by `vislab submission`).",
        "set -e",
        'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
    ]
    for name, url in urls.items():
        lines.append(f'wget -q -O "$here/{name}" {shlex.quote(url)}')
    return "\n".join(lines) + "\n"


def _readme(parts: dict[str, list[dict[str, Any]]], urls: dict[str, str]) -> str:
    rows = "\n".join(
        f"| {p} | `bash hw1_{p}.sh IMG_DIR {OUTPUT[p]}` | `{i['source']}` | {i['meta'].model} "
        f"| `{i['name']}.npz`, {i['mb']:.1f} MB |"
        for p, members in parts.items()
        for i in members
    )
    timm = [p for p, members in parts.items() if any(i["timm"] for i in members)]
    ensembles = [p for p, members in parts.items() if len(members) > 1]
    together = (
        f" Problem {' and '.join(ensembles)} is an ensemble: the mean of its models' class "
        "probabilities, as `vislab predict --ckpt A B` computes it."
        if ensembles
        else ""
    )
    extra = (
        f", and timm 0.6.7 (one of the course's optional packages) for problem {' and '.join(timm)}"
        if timm
        else ""
    )
    text = f"""# HW1 submission (written by `vislab submission`)

| problem | command | from | model | weights |
|---|---|---|---|---|
{rows}
{together}

Needs `python3` = Python 3.8 with torch 1.12.1, torchvision 0.13.1, numpy and Pillow, as the
course's environment has them{extra}. Runs on the GPU when there is one, else on the CPU.
`hw1_infer.py` builds each model from `pN_model.json` and its weights `pN_model.npz` (NumPy
arrays, read without unpickling), with vislab's own code in `vislab/`, and predicts as
`vislab predict` does. No path is written in: the scripts find their files beside
themselves. Copy the folder's contents to the root of your hw1 repository, beside your
training code and your report.
"""
    for name, url in urls.items():
        text += f"""
`{name}` is fetched from {url} by `hw1_download.sh` (with `wget -O`), which the course
runs before grading: upload it there, and do not commit it (`.gitignore` lists it; GitHub
takes files up to 50 MB).
"""
    return text


def _check_out(out: Path) -> None:
    """--out is written afresh: it may not exist, be empty, or hold an earlier submission
    and nothing else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise VislabError(f"--out {out} is a file; give a folder")
    ours = {"vislab", "hw1_infer.py", "hw1_download.sh", ".gitignore", "README.md"}
    ours |= {f"hw1_{p}.sh" for p in PROBLEMS}
    models = re.compile(r"p[12]_model(_[0-9]+)?\.(npz|json)")
    others = sorted(
        p.name for p in out.iterdir() if p.name not in ours and not models.fullmatch(p.name)
    )
    if others or (any(out.iterdir()) and not (out / "hw1_infer.py").is_file()):
        shown = ", ".join(others[:3]) or "no hw1_infer.py"
        raise VislabError(
            f"--out {out} holds files that are not an earlier submission's ({shown}); "
            "it is written afresh, so give a new or empty folder"
        )


def build_submission(
    out: Path,
    p1: list[Path] | None = None,
    p2: list[Path] | None = None,
    p1_url: list[str] | None = None,
    p2_url: list[str] | None = None,
) -> dict[str, Any]:
    """Write the folder; returns {problem: {"model", "mb", "download"}}. Several checkpoints
    of a problem predict as an ensemble; its URLs, when given, one per checkpoint."""
    if not p1 and not p2:
        raise VislabError("give --p1 CKPT, --p2 CKPT or both")
    out = Path(out)
    _check_out(out)
    given = {"1": (p1, p1_url), "2": (p2, p2_url)}
    parts: dict[str, list[dict[str, Any]]] = {}
    urls: dict[str, str] = {}
    for problem, (ckpts, addresses) in given.items():
        if not ckpts:
            if addresses:
                raise VislabError(f"--p{problem}-url without --p{problem}")
            continue
        if addresses and len(addresses) != len(ckpts):
            raise VislabError(
                f"--p{problem}-url: {len(addresses)} address(es) for {len(ckpts)} model(s); "
                f"give one per model, in the order of --p{problem}"
            )
        members = []
        for k, (ckpt, name) in enumerate(zip(ckpts, model_names(problem, len(ckpts)), strict=True)):
            data, meta, timm = _weights(Path(ckpt), problem)
            if addresses:
                urls[f"{name}.npz"] = addresses[k]
            elif len(data) > LIMIT:
                raise VislabError(
                    f"--p{problem} {ckpt}: its weights are {len(data) / 1e6:.0f} MB, over the "
                    f"course's 50 MB; give --p{problem}-url URL (one per model) where you will "
                    f"upload {name}.npz, and hw1_download.sh will fetch it from there"
                )
            members.append(
                dict(
                    data=data, meta=meta, timm=timm, source=str(ckpt), mb=len(data) / 1e6, name=name
                )
            )
        same_classes([Path(c) for c in ckpts], [m["meta"] for m in members], f"--p{problem}")
        parts[problem] = members
    # written whole beside out, then swapped in: a failure (a full disk) keeps the old folder
    # (one submission at a time into out's folder: a second is refused at once)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out.parent, "--out", out):
        scratch = scratch_path(out, "new")
        try:
            _write_folder(scratch, parts, urls)
            old = scratch_path(out, "old")
            with uninterrupted():  # never the old folder moved away and the new one not in
                if out.exists():
                    os.replace(out, old)  # an earlier submission, nothing else in it
                os.replace(scratch, out)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        p: {
            "model": " + ".join(i["meta"].model for i in members),
            "mb": sum(i["mb"] for i in members),
            "download": any(f"{i['name']}.npz" in urls for i in members),
        }
        for p, members in parts.items()
    }


def _write_folder(out: Path, parts: dict[str, dict[str, Any]], urls: dict[str, str]) -> None:
    out.mkdir(parents=True)
    for rel in SHIPPED:
        (out / "vislab" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE / rel, out / "vislab" / rel)
    shutil.copyfile(PACKAGE / "course" / "submission" / "hw1_infer.py", out / "hw1_infer.py")
    for problem, members in parts.items():
        for part in members:
            atomic_write_bytes(out / f"{part['name']}.npz", part["data"])
            text = json.dumps(part["meta"].to_dict(), indent=1) + "\n"
            atomic_write_bytes(out / f"{part['name']}.json", text.encode())
        script = _script(problem, " + ".join(i["meta"].model for i in members))
        atomic_write_bytes(out / f"hw1_{problem}.sh", script.encode())
    if urls:
        atomic_write_bytes(out / "hw1_download.sh", _download_script(urls).encode())
        ignore = "".join(f"{name}\n" for name in urls)
        atomic_write_bytes(out / ".gitignore", ignore.encode())
    atomic_write_bytes(out / "README.md", _readme(parts, urls).encode())
