"""Problem 1 on the real course data (skipped when ../shared/data is absent)."""

import csv
import json
import os
import subprocess

import pytest
from conftest import REAL_P1, REPO

from vislab.cli import main

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (REAL_P1 / "train_50").is_dir(), reason=f"no {REAL_P1}"),
]


def test_train_predict_evaluate_on_a_slice_of_the_real_data(tmp_path):
    run = tmp_path / "run"
    args = [
        "train",
        str(REPO / "configs" / "p1_model_a.yaml"),
        "--data",
        str(REAL_P1),
        "--out",
        str(run),
        "--epochs",
        "2",
        "--set",
        "data.max_per_class=60",
        "--set",
        "trainer.progress_bar=false",
    ]
    assert main(args) == 0
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val_acc = max(float(r["val_acc"]) for r in rows)  # best.ckpt's epoch
    assert val_acc > 0.06  # 3,000 images, two epochs: 0.16 here, chance is 0.02

    pred = tmp_path / "out" / "pred.csv"
    ckpt = str(run / "checkpoints" / "best.ckpt")
    assert (
        main(["predict", "--ckpt", ckpt, "--images", str(REAL_P1 / "val_50"), "--out", str(pred)])
        == 0
    )
    lines = pred.read_text().splitlines()
    assert lines[0] == "filename,label" and len(lines) == 2501

    for gt in (REAL_P1 / "val_gt.csv", REAL_P1 / "val_50"):
        ev = tmp_path / f"ev_{gt.name}"
        assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(ev)]) == 0
        acc = json.loads((ev / "metrics.json").read_text())["accuracy"]
        assert acc == pytest.approx(val_acc, abs=1e-6)

    tta = tmp_path / "out" / "tta.csv"
    predict = ["predict", "--ckpt", ckpt, "--images", str(REAL_P1 / "val_50"), "--out", str(tta)]
    assert main([*predict, "--tta"]) == 0
    sh_out = tmp_path / "sh" / "out.csv"
    env = dict(os.environ, VISLAB_P1_CKPT=ckpt)
    subprocess.run(
        ["bash", str(REPO / "hw1_1.sh"), str(REAL_P1 / "val_50"), str(sh_out)],
        check=True,
        env=env,
        capture_output=True,
    )
    assert sh_out.read_text() == tta.read_text()
