"""What `--resume` refuses before it trains: data changed since the run started, checkpoints
of another run (or of no recorded run), a last.ckpt of another model."""

import json
import shutil

import pytest
import torch
from conftest import train_args

from vislab.cli import main


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _snapshot(folder):
    """Every file of a folder and its bytes (the run's lock aside)."""
    return {
        p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def unfinished(p1_tiny, tmp_path_factory):
    """A run of 2 epochs whose last.ckpt says it ended epoch 1 of 2 (0-based epoch 0)."""
    out = tmp_path_factory.mktemp("runs") / "a"
    assert main(train_args(p1_tiny, out, 2)) == 0
    last = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["epoch"] = 0
    torch.save(ckpt, last)
    return out


def test_the_data_listing_is_the_files_training_reads(p1_tiny, tmp_path):
    from vislab.config import DataConfig
    from vislab.train.data_fingerprint import data_listing, fingerprint

    data = tmp_path / "d"
    shutil.copytree(p1_tiny, data)
    spec = DataConfig(root=str(data))
    before = data_listing(spec)
    assert before and all(n.startswith(("train_50/", "val_50/")) for n, _ in before)
    (data / ".cache").mkdir()
    (data / ".cache" / "x.png").write_bytes(b"hidden: not data")
    (data / "train_50" / ".DS_Store").write_bytes(b"hidden")
    (data / "train_50" / "Thumbs.db").write_bytes(b"not an image")
    (data / "val_50" / "pred.csv").write_text("0_0.png,0\n")
    (data / "runs" / "a").mkdir(parents=True)  # a run folder under the root
    (data / "runs" / "a" / "progress.png").write_bytes(b"not data")
    assert data_listing(spec) == before
    (data / "train_50" / "0_999.png").write_bytes(b"data")
    assert fingerprint(data_listing(spec)) != fingerprint(before)
    labels = tmp_path / "labels.csv"  # outside the root: named by its own path
    labels.write_text("0_0.png,0\n")
    listed = data_listing(DataConfig(root=str(data), val_labels=str(labels)))
    assert (labels.as_posix(), labels.stat().st_size) in listed


def test_a_run_inside_its_data_root_resumes(p1_tiny, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(p1_tiny, data)
    out = data / "runs" / "a"  # its checkpoints are files under the data root, not data
    assert main(train_args(data, out, 2)) == 0
    last = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["epoch"] = 0
    torch.save(ckpt, last)
    (data / "val_50" / "Thumbs.db").write_bytes(b"Windows' thumbnails")
    capsys.readouterr()
    assert main(train_args(data, out, 2, "--resume")) == 0, capsys.readouterr().err


def test_a_run_json_without_a_scope_is_checked_against_every_file_of_the_root(
    p1_tiny, tmp_path, capsys
):
    data, out = tmp_path / "data", tmp_path / "run"
    shutil.copytree(p1_tiny, data)
    assert main(train_args(data, out, 1)) == 0
    identity = json.loads((out / "run.json").read_text())
    files = sum(1 for p in data.rglob("*") if p.is_file())
    identity["data"] = {  # as runs recorded it before the fingerprint named its scope
        "files": files,
        "sha256": fingerprint_of_root(data),
    }
    (out / "run.json").write_text(json.dumps(identity))
    capsys.readouterr()
    assert main(train_args(data, out, 1, "--resume")) == 0  # the same files
    (data / "notes.txt").write_text("a file of the root")
    assert main(train_args(data, out, 1, "--resume")) == 2
    assert f"({files + 1} files now, {files} when the run started;" in _one_line(capsys)


def fingerprint_of_root(root):
    """The fingerprint runs recorded before it named its scope: every visible file of root."""
    import hashlib

    files = sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*") if p.is_file()
    )
    text = "".join(f"{name}\0{size}\n" for name, size in files)
    return hashlib.sha256(text.encode()).hexdigest()


def test_resume_refuses_data_changed_in_place(p1_tiny, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "run"
    shutil.copytree(p1_tiny, data)
    assert main(train_args(data, out, 1)) == 0
    kept = _snapshot(out)
    first, second, third = sorted((data / "train_50").iterdir())[:3]
    shutil.copy(first, data / "train_50" / "zz_added.png")
    removed = second.read_bytes()
    second.unlink()
    with open(third, "ab") as f:
        f.write(b"\0")
    capsys.readouterr()
    assert main(train_args(data, out, 1, "--resume")) == 2
    err = _one_line(capsys)
    assert f"--resume: the files under {data} are not those {out} started training on" in err
    assert "1 added, e.g. train_50/zz_added.png" in err
    assert f"1 removed, e.g. train_50/{second.name}" in err
    assert f"1 resized, e.g. train_50/{third.name}" in err
    assert "80 files now, 80 when the run started" in err
    assert _snapshot(out) == kept  # run.json keeps the fingerprint of the data trained on

    elsewhere = tmp_path / "elsewhere"  # the same changed files at another root
    shutil.copytree(data, elsewhere)
    assert main(train_args(elsewhere, out, 1, "--resume")) == 2
    err = _one_line(capsys)
    assert f"data.root: '{data}' -> '{elsewhere}' (other files: 1 added" in err

    (data / "train_50" / "zz_added.png").unlink()  # the data as it was: the run goes on
    second.write_bytes(removed)
    with open(third, "r+b") as f:
        f.truncate(third.stat().st_size - 1)
    assert main(train_args(data, out, 1, "--resume")) == 0
    assert "is complete (1 epochs); nothing to train" in capsys.readouterr().out


def test_a_run_json_without_a_listing_tells_the_change_by_its_count(p1_tiny, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "run"
    shutil.copytree(p1_tiny, data)
    assert main(train_args(data, out, 1)) == 0
    identity = json.loads((out / "run.json").read_text())
    identity["data"].pop("listing", None)  # as runs wrote it before run.json listed the files
    (out / "run.json").write_text(json.dumps(identity))
    shutil.copy(next((data / "val_50").iterdir()), data / "val_50" / "zz.png")
    capsys.readouterr()
    assert main(train_args(data, out, 1, "--resume")) == 2
    assert "(81 files now, 80 when the run started; other names or sizes)" in _one_line(capsys)


def test_resume_without_run_json_refuses_checkpoints_that_carry_a_run_id(
    unfinished, p1_tiny, tmp_path, capsys
):
    other = tmp_path / "other"
    assert main(train_args(p1_tiny, other, 1)) == 0
    ids = [json.loads((r / "run.json").read_text())["id"] for r in (unfinished, other)]
    lost = tmp_path / "lost"  # run.json removed; every checkpoint the run's own
    shutil.copytree(unfinished, lost)
    (lost / "run.json").unlink()
    mixed = tmp_path / "mixed"  # run.json removed, another run's last.ckpt put in
    shutil.copytree(lost, mixed)
    shutil.copy(other / "checkpoints" / "last.ckpt", mixed / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    for run, held in (
        (lost, f"best.ckpt, epoch_001.ckpt, epoch_002.ckpt, last.ckpt of run {ids[0]}"),
        (mixed, f"best.ckpt, epoch_001.ckpt, epoch_002.ckpt of run {ids[0]}; "
         f"last.ckpt of run {ids[1]}"),
    ):  # fmt: skip
        kept = _snapshot(run)
        assert main(train_args(p1_tiny, run, 2, "--resume")) == 2
        err = _one_line(capsys)
        assert f"--resume: {run / 'run.json'} is missing, yet the checkpoints in " in err
        assert f"carry run ids ({held})" in err
        assert _snapshot(run) == kept  # no id minted over them, nothing trained


def test_resume_without_run_json_takes_checkpoints_without_ids(p1_tiny, tmp_path, capsys):
    out = tmp_path / "run"  # as runs were written before they had identities
    assert main(train_args(p1_tiny, out, 1)) == 0
    (out / "run.json").unlink()
    for path in (out / "checkpoints").glob("*.ckpt"):
        ckpt = torch.load(path, weights_only=True)
        ckpt["vislab"]["run_id"] = None
        torch.save(ckpt, path)
    capsys.readouterr()
    assert main(train_args(p1_tiny, out, 1, "--resume")) == 0
    assert "is complete (1 epochs); nothing to train" in capsys.readouterr().out


def test_resume_refuses_a_best_checkpoint_of_another_run(unfinished, p1_tiny, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(train_args(p1_tiny, other, 1)) == 0
    theirs = json.loads((other / "run.json").read_text())["id"]
    run = tmp_path / "run"
    shutil.copytree(unfinished, run)
    shutil.copy(other / "checkpoints" / "best.ckpt", run / "checkpoints" / "best.ckpt")
    ours = json.loads((run / "run.json").read_text())["id"]
    kept = _snapshot(run)
    capsys.readouterr()
    assert main(train_args(p1_tiny, run, 2, "--resume")) == 2
    best = run / "checkpoints" / "best.ckpt"
    assert f"--resume: {best} is a checkpoint of run {theirs}, not of {run} (run {ours})" in (
        _one_line(capsys)
    )
    assert _snapshot(run) == kept


@pytest.mark.parametrize(
    "key, value, said",
    [
        ("model", "resnet9", "its model 'resnet9' where the run has 'model_a'"),
        (
            "model_kwargs",
            {"dropout": 0.5},
            "its model_kwargs {'dropout': 0.5} where the run has {}",
        ),
        ("classes", ["a", "b", "c", "d"], "its classes ['a', 'b', 'c', 'd'] where the run has"),
    ],
)
def test_resume_refuses_a_last_checkpoint_of_another_model(
    unfinished, p1_tiny, tmp_path, capsys, key, value, said
):
    run = tmp_path / "run"
    shutil.copytree(unfinished, run)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["vislab"][key] = value
    torch.save(ckpt, last)
    capsys.readouterr()
    assert main(train_args(p1_tiny, run, 2, "--resume")) == 2
    err = _one_line(capsys)
    assert f"--resume: {last} is not a checkpoint of the model {run} trains: {said}" in err
    assert "data:" not in capsys.readouterr().out  # refused before the data is decoded


def test_resume_turns_weights_that_do_not_fit_into_one_line(unfinished, p1_tiny, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(unfinished, run)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    weights = ckpt["state_dict"]
    name = next(k for k in weights if k.endswith(".weight"))
    weights[name] = torch.zeros(3, 3)  # metadata of the run's model, weights of another
    torch.save(ckpt, last)
    history = (run / "metrics.csv").read_bytes()
    capsys.readouterr()
    assert main(train_args(p1_tiny, run, 2, "--resume")) == 2
    err = _one_line(capsys)
    assert f"--resume: {last} does not fit the model the run trains (size mismatch for " in err
    assert (run / "metrics.csv").read_bytes() == history


def test_resume_of_an_empty_folder_leaves_it_empty(p1_tiny, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(train_args(p1_tiny, empty, 1, "--resume")) == 2
    assert f"--resume: {empty} holds no run (no config.yaml)" in _one_line(capsys)
    assert list(empty.iterdir()) == []
