"""Long commands say where they are: off a terminal, plain lines on stderr (each step when
there are few, else one each 10 seconds and the last)."""

from __future__ import annotations

from conftest import seg_train_args, train_args

import vislab.steps as steps_module
from vislab.cli import main
from vislab.steps import Steps


def test_few_steps_each_get_a_line_and_many_one_each_ten_seconds(capsys, monkeypatch):
    with Steps(3, "embed") as s:
        for note in ("a", "b", "c"):
            s.step(note=note)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"embed: {i}/3 steps" for i in (1, 2, 3)]
    assert lines[2].endswith("; c")

    clock = iter(float(t) for t in range(0, 1000, 3))  # each step 3 s after the last
    monkeypatch.setattr(steps_module.time, "perf_counter", lambda: next(clock))
    with Steps(100, "predict", "tiles") as s:
        for _ in range(25):
            s.step(4)
    lines = capsys.readouterr().err.splitlines()
    # a line once 10 s have passed since the last (every 4th step of 3 s), and the last one
    assert lines[0].startswith("predict: 16/100 tiles (12 s)")
    assert lines[-1].startswith("predict: 100/100 tiles (75 s)") and len(lines) == 7


def test_embed_progress_predict_and_report_say_where_they_are(p1_tiny, p2_tiny, tmp_path, capsys):
    assert main(train_args(p1_tiny, tmp_path / "cls", 2)) == 0
    assert main(seg_train_args(p2_tiny, tmp_path / "seg", 2)) == 0
    capsys.readouterr()
    assert main(["embed", str(tmp_path / "cls")]) == 0
    err = capsys.readouterr().err
    assert "embed: 1/4 steps" in err and "; t-SNE of epoch 2" in err
    assert main(["progress", str(tmp_path / "seg")]) == 0
    assert "progress: 2/2 snapshots" in capsys.readouterr().err
    images = p2_tiny / "validation"
    assert main(["predict", "--ckpt", str(tmp_path / "seg" / "checkpoints" / "best.ckpt"),
                 "--images", str(images), "--out", str(tmp_path / "masks")]) == 0  # fmt: skip
    assert "predict: 4/4 tiles" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "cls"), "--out", str(tmp_path / "rep")]) == 0
    err = capsys.readouterr().err
    assert "report: 1/3 steps" in err and "report: 3/3 steps" in err
