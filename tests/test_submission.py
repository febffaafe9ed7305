"""`vislab submission`: the folder's contents and refusals, and the folder run where the course
runs it: Python 3.8 with exactly the course's pins, in a virtual environment built once per
machine in a cache folder ($VISLAB_COURSE_ENV, default ~/.cache/vislab/course-py38), for a
model of every recipe; its outputs against `vislab predict`'s."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, _cli_train, jolted_checkpoint
from PIL import Image
from stalling import stalled_at

from vislab.cli import main
from vislab.course.landcover import LANDCOVER
from vislab.course.submission import build as submission
from vislab.ensembles import folder_members, is_ensemble

COURSE_ENV = Path(
    os.environ.get("VISLAB_COURSE_ENV", Path.home() / ".cache" / "vislab" / "course-py38")
)
# the same versions, read inside the environment (torch reports 1.12.1+cu102)
CHECK = """import importlib.metadata as m, sys
sys.exit(any(m.version(p.split("==")[0]).split("+")[0] != p.split("==")[1] for p in sys.argv[1:]))
"""


def _python38() -> str | None:
    """A Python 3.8 that runs: pyenv's own builds first, then PATH (where pyenv's shim of
    python3.8 exists but fails unless 3.8 is a selected version)."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{submission.COURSE_PYTHON}.*/bin/python"))
    found = shutil.which(f"python{submission.COURSE_PYTHON}")
    for candidate in [*map(str, reversed(pyenv)), *([found] if found else [])]:
        done = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip() == submission.COURSE_PYTHON:
            return candidate
    return None


def _has_pins(python: Path) -> bool:
    if not python.is_file():
        return False
    done = subprocess.run([str(python), "-c", CHECK, *submission.COURSE_PINS], capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="session")
def course_env() -> Path:
    """The environment's bin folder (its python3 first on PATH is the course's python3);
    built here on first use (about 2 GB, most of it torch's wheel), skipped if it cannot be."""
    python = COURSE_ENV / "bin" / "python"
    if _has_pins(python):
        return python.parent
    base = _python38()
    if base is None:
        pytest.skip(
            f"no Python {submission.COURSE_PYTHON} (on PATH or in pyenv) for the course's env"
        )
    partial = COURSE_ENV.with_name(COURSE_ENV.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    made = subprocess.run([base, "-m", "venv", str(partial)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"{base} cannot make a virtual environment: {made.stderr.strip()[-200:]}")
    pip = [str(partial / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir"]
    done = subprocess.run([*pip, *submission.COURSE_PINS], capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot install the course's pins for Python 3.8: {tail}")
    shutil.rmtree(COURSE_ENV, ignore_errors=True)
    partial.rename(COURSE_ENV)  # a venv's python finds its packages from where it lies
    assert _has_pins(python)
    return python.parent


# tiny runs of every recipe's model: its own config, 1 epoch, at small sizes; weights that
# would come from the torch hub cache start from scratch (the Lite weights come from pip)
RECIPES = {
    "p1_model_a.yaml": [],
    "p1_cpu.yaml": [],
    "p1_lite.yaml": ["model.kwargs.input_size=64"],
    "p1_model_b.yaml": ["model.kwargs.input_size=64", "model.kwargs.weights=null"],
    "p2_cpu.yaml": ["data.image_size=32"],
    "p2_lite.yaml": ["data.image_size=64"],
    "p2_fcn32s.yaml": ["model.kwargs.weights=null", "data.batch_size=4"],
    "p2_deeplabv3.yaml": ["model.kwargs.weights=null", "data.batch_size=4"],
    # ensembles: every member at the size given last
    "p1_ensemble.yaml": ["model.kwargs.input_size=64"],
    "p2_ensemble.yaml": ["data.image_size=64"],
}
P1 = ["model.num_classes=4", "data.batch_size=16"]


def tiny_run(recipe: str, data: Path, root: Path) -> Path:
    """best.ckpt of a tiny run of the recipe; an ensemble recipe's folder."""
    out = root / recipe[:-5]
    ensemble = is_ensemble(REPO / "configs" / recipe)
    if not out.exists():
        sets = (P1 if recipe.startswith("p1") else []) + RECIPES[recipe]
        assert main(_cli_train(recipe, data, out, 1, sets, [])) == 0
    return out if ensemble else out / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("submission_runs")
    return lambda recipe, data: tiny_run(recipe, data, root)


def build(out: Path, p1=None, p2=None, *urls) -> int:
    args = ["submission", "--out", str(out)]
    args += ["--p1", str(p1)] if p1 else []
    args += ["--p2", str(p2)] if p2 else []
    return main(args + list(urls))


def test_every_recipe_is_covered():
    # the course's recipes (problems 1 and 2); an example of one's own data is no submission's
    assert sorted(RECIPES) == sorted(p.name for p in (REPO / "configs").glob("p[12]_*.yaml"))


def test_the_folder_holds_scripts_weights_and_vislabs_own_code(
    tiny_runs, p1_tiny, p2_tiny, tmp_path, capsys
):
    p1 = tiny_runs("p1_model_a.yaml", p1_tiny)
    p2 = tiny_runs("p2_cpu.yaml", p2_tiny)
    out = tmp_path / "hw1"
    assert build(out, p1, p2) == 0
    assert "problem 1: model_a" in capsys.readouterr().out
    for rel in submission.SHIPPED:
        assert (out / "vislab" / rel).read_bytes() == (submission.PACKAGE / rel).read_bytes()
    assert (out / "hw1_infer.py").read_bytes() == (
        submission.PACKAGE / "course" / "submission" / "hw1_infer.py"
    ).read_bytes()
    for p in ("1", "2"):
        script = (out / f"hw1_{p}.sh").read_text()
        assert f'python3 "$here/hw1_infer.py" {p} "$1" "$2"' in script
        assert str(tmp_path) not in script  # no path written in
    assert not (out / "hw1_download.sh").exists()
    # the model's data set spec and its windows travel with it
    described = json.loads((out / "p2_model.json").read_text())
    assert described["dataset"] == LANDCOVER.to_dict()
    assert described["scale"] == [0.5, 0.5] and described["window"] == [32, 32]
    readme = (out / "README.md").read_text()
    assert "model_a" in readme and "lraspp_mobilenet_v3" in readme
    # rebuilt in place: an earlier submission is replaced, problem 1 alone this time
    assert build(out, p1) == 0
    assert not (out / "hw1_2.sh").exists() and (out / "hw1_1.sh").is_file()


def test_it_runs_in_this_python_too_and_equals_predict(tiny_runs, p1_tiny, p2_tiny, tmp_path):
    p1 = jolted_checkpoint(tiny_runs("p1_lite.yaml", p1_tiny), tmp_path / "p1.ckpt")
    p2 = jolted_checkpoint(tiny_runs("p2_lite.yaml", p2_tiny), tmp_path / "p2.ckpt")
    out = tmp_path / "hw1"
    assert build(out, p1, p2) == 0
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    work = compare(out, p1, p2, p1_tiny, p2_tiny, tmp_path, env)
    # the scripts predict with test-time augmentation: here it changes the predictions
    predict(p1, p1_tiny / "val_50", work / "plain.csv")
    assert (work / "plain.csv").read_text() != (work / "ref.csv").read_text()
    predict(p2, p2_tiny / "validation", work / "plain")
    plain, tta = masks(work / "plain"), masks(work / "ref")
    assert any(not np.array_equal(plain[name], tta[name]) for name in tta)


class _Planted:
    """Unpickled, it would create the file at `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("planted", ["pickle", "torch.save", "a lone .npy", "garbage"])
def test_a_weights_file_is_read_without_unpickling(tiny_runs, p1_tiny, tmp_path, planted):
    # the weights may be fetched from the web by hw1_download.sh: whatever the file holds,
    # reading it runs no code, and a file that is not vislab's weights is one line
    out = tmp_path / "hw1"
    assert build(out, tiny_runs("p1_model_a.yaml", p1_tiny)) == 0
    arrays = np.load(out / "p1_model.npz", allow_pickle=False)
    assert all(arrays[k].dtype != object for k in arrays.files)  # plain arrays, a tensor each
    weights, marker = out / "p1_model.npz", tmp_path / "ran"
    if planted == "pickle":
        weights.write_bytes(pickle.dumps({"w": _Planted(marker)}))
    elif planted == "torch.save":
        torch.save({"w": _Planted(marker)}, weights)
    elif planted == "a lone .npy":
        with open(weights, "wb") as f:
            np.save(f, np.zeros(3))
    else:
        weights.write_bytes(b"\x00garbage")
    done = subprocess.run(
        [sys.executable, str(out / "hw1_infer.py"), "1", str(p1_tiny / "val_50"), "p.csv"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode != 0 and not marker.exists()
    assert "is not a weights file of `vislab submission`" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "p.csv").exists()


def test_refusals_name_the_problem(tiny_runs, p1_tiny, p2_tiny, tmp_path, capsys, monkeypatch):
    p1 = tiny_runs("p1_model_a.yaml", p1_tiny)
    p2 = tiny_runs("p2_cpu.yaml", p2_tiny)

    def refused(message, *args):
        assert main(["submission", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err

    refused("give --p1 CKPT, --p2 CKPT or both", "--out", tmp_path / "a")
    refused(
        "is a segmentation model; problem 1 needs a classification model",
        "--p1",
        p2,
        "--out",
        tmp_path / "a",
    )
    refused("checkpoint not found", "--p2", tmp_path / "none.ckpt", "--out", tmp_path / "a")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.pdf").write_bytes(b"%PDF")
    refused(
        "holds files that are not an earlier submission's (report.pdf)", "--p1", p1, "--out", mine
    )
    assert (mine / "report.pdf").read_bytes() == b"%PDF"
    assert main(["export", "--ckpt", str(p1), "--format", "onnx"]) == 0
    refused(
        "an ONNX model cannot run in the course's environment",
        "--p1",
        p1.with_suffix(".onnx"),
        "--out",
        tmp_path / "a",
    )
    monkeypatch.setattr(submission, "LIMIT", 1000)  # as if the weights were over 50 MB
    refused("over the course's 50 MB; give --p2-url URL", "--p2", p2, "--out", tmp_path / "a")
    url = "https://example.org/w?id=1&x=2"
    assert build(tmp_path / "big", None, p2, "--p2-url", url) == 0
    download = (tmp_path / "big" / "hw1_download.sh").read_text()
    assert f"wget -q -O \"$here/p2_model.npz\" '{url}'" in download
    assert (tmp_path / "big" / ".gitignore").read_text() == "p2_model.npz\n"
    assert url in (tmp_path / "big" / "README.md").read_text()


# a submission that stops once its folder is written whole beside --out, before the swap
STALLED = stalled_at("vislab.course.submission.build", "_write_folder", "written")


def test_a_second_submission_into_the_same_folder_is_told_what_is_held(
    tiny_runs, p1_tiny, tmp_path, capsys
):
    p1, subs = tiny_runs("p1_model_a.yaml", p1_tiny), tmp_path / "subs"
    argv = ["submission", "--p1", str(p1), "--out", str(subs / "other")]
    first = subprocess.Popen([sys.executable, "-c", STALLED, *argv], stdout=subprocess.PIPE)
    try:
        assert first.stdout.readline().strip() == b"written"
        assert build(subs / "sub", p1) == 2
        err = capsys.readouterr().err
        assert (
            f"--out {subs / 'sub'}: its folder {subs} is held by another vislab command "
            f"(process {first.pid}, writing {subs / 'other'}); wait for it to end" in err
        ), err
        assert not (subs / "sub").exists()
    finally:
        first.terminate()
        assert first.wait(timeout=60) == 143
    assert sorted(p.name for p in subs.iterdir()) == []  # its scratch folder went with it
    assert build(subs / "sub", p1) == 0


def compare(folder, p1, p2, p1_tiny, p2_tiny, tmp_path, env, p1_ckpts=()) -> Path:
    """Run the folder's scripts as the course does (from another folder, python3 on PATH)
    and compare with `vislab predict --tta` on the same checkpoints (p1, or p1_ckpts
    together); the folder of both."""
    work = tmp_path / "grader"
    work.mkdir(exist_ok=True)
    for p, images, out in (
        ("1", p1_tiny / "val_50", work / "out" / "pred.csv"),
        ("2", p2_tiny / "validation", work / "out" / "masks"),
    ):
        script = [str(folder / f"hw1_{p}.sh"), str(images), str(out)]
        subprocess.run(["bash", *script], cwd=work, env=env, check=True, capture_output=True)
    predict([p1] if p1 else p1_ckpts, p1_tiny / "val_50", work / "ref.csv", "--tta")
    assert (work / "out" / "pred.csv").read_text() == (work / "ref.csv").read_text()
    predict(p2, p2_tiny / "validation", work / "ref", "--tta")
    ours, got = masks(work / "ref"), masks(work / "out" / "masks")
    assert list(ours) == list(got) and len(ours) == 4
    for name in ours:
        assert np.array_equal(got[name], ours[name]), name
    return work


def predict(ckpt: Path | list[Path], images: Path, out: Path, *tta: str) -> None:
    ckpts = [str(c) for c in (ckpt if isinstance(ckpt, list) else [ckpt])]
    args = ["predict", "--ckpt", *ckpts, "--images", str(images), "--out", str(out)]
    assert main([*args, *tta]) == 0


def masks(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize(
    "p1_recipe, p2_recipe",
    [
        ("p1_model_a.yaml", "p2_cpu.yaml"),
        ("p1_cpu.yaml", "p2_fcn32s.yaml"),
        ("p1_model_b.yaml", "p2_deeplabv3.yaml"),
        ("p1_lite.yaml", "p2_lite.yaml"),
        ("p1_ensemble.yaml", "p2_ensemble.yaml"),
    ],
)
def test_the_folder_runs_in_the_courses_environment(
    course_env, tiny_runs, p1_tiny, p2_tiny, tmp_path, p1_recipe, p2_recipe
):
    p1, p2 = tiny_runs(p1_recipe, p1_tiny), tiny_runs(p2_recipe, p2_tiny)
    folder = tmp_path / "hw1"
    urls = []
    for problem, ckpt in (("1", p1), ("2", p2)):  # one address per model
        count = len(folder_members(ckpt) or [ckpt])
        urls += [
            f"--p{problem}-url",
            *(f"https://example.org/p{problem}/{k}" for k in range(count)),
        ]
    assert build(folder, p1, p2, *urls) == 0  # the large ones also stay in the folder
    env = {"PATH": f"{course_env}:/usr/bin:/bin", "HOME": str(tmp_path)}
    compare(folder, p1, p2, p1_tiny, p2_tiny, tmp_path, env)


def test_several_models_of_a_problem_ship_as_an_ensemble(
    tiny_runs, p1_tiny, p2_tiny, tmp_path, capsys
):
    p1 = [tiny_runs(r, p1_tiny) for r in ("p1_model_a.yaml", "p1_cpu.yaml")]
    p2 = tiny_runs("p2_ensemble.yaml", p2_tiny)  # the folder: its members' best.ckpt
    out = tmp_path / "hw1"
    args = ["submission", "--out", str(out), "--p1", *map(str, p1), "--p2", str(p2)]
    count = len(folder_members(p2))
    urls = ["--p2-url", *(f"https://example.org/{k}" for k in range(1, count + 1))]
    assert main([*args, *urls]) == 0
    assert "problem 1: model_a + resnet9" in capsys.readouterr().out
    names = sorted(f.name for f in out.glob("p*_model*"))
    models = [("1", k) for k in (1, 2)] + [("2", k) for k in range(1, count + 1)]
    assert names == sorted(f"p{p}_model_{k}.{x}" for p, k in models for x in ("json", "npz"))
    download = (out / "hw1_download.sh").read_text()
    shipped = [f"p2_model_{k}.npz" for k in range(1, count + 1)]
    for k, name in enumerate(shipped, 1):
        assert f'wget -q -O "$here/{name}" https://example.org/{k}\n' in download
    assert (out / ".gitignore").read_text() == "".join(f"{name}\n" for name in shipped)
    assert "Problem 1 and 2 is an ensemble" in (out / "README.md").read_text()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    # the scripts' outputs are `vislab predict --ckpt A B --tta`'s, and no single model's
    work = compare(out, None, p2, p1_tiny, p2_tiny, tmp_path, env, p1_ckpts=p1)
    for one in p1:
        predict(one, p1_tiny / "val_50", work / "one.csv", "--tta")
        assert (work / "one.csv").read_text() != (work / "ref.csv").read_text()

    # refused: one address for two models; models of other classes
    assert main([*args, "--p2-url", "https://example.org/a"]) == 2
    assert f"--p2-url: 1 address(es) for {count} model(s)" in capsys.readouterr().err
    other = torch.load(p1[1], weights_only=True)
    other["vislab"]["classes"] = ["cat", "dog", "fox", "owl"]
    renamed = tmp_path / "renamed.ckpt"
    torch.save(other, renamed)
    assert main(["submission", "--out", str(tmp_path / "x"), "--p1", str(p1[0]), str(renamed)]) == 2
    assert f"--p1 {renamed} predicts other classes than {p1[0]}" in capsys.readouterr().err
