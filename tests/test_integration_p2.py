"""Problem 2 on a few real tiles (skipped when ../shared/data is absent)."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import REAL_P2, REPO
from PIL import Image

from vislab.cli import main

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (REAL_P2 / "train").is_dir(), reason=f"no {REAL_P2}"),
]


def test_train_predict_evaluate_on_real_tiles_at_low_resolution(tmp_path):
    # 8 train and 4 validation pairs; 0177's mask holds 7 pure red pixels
    data = tmp_path / "p2"
    for split, ids in (("train", range(8)), ("validation", [13, 62, 104, 177])):
        (data / split).mkdir(parents=True)
        for i in ids:
            for suffix in ("_sat.jpg", "_mask.png"):
                name = f"{i:04d}{suffix}"
                shutil.copy(REAL_P2 / split / name, data / split / name)
    run = tmp_path / "run"
    args = [
        "train",
        str(REPO / "configs" / "p2_cpu.yaml"),
        "--data",
        str(data),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--set",
        "data.image_size=64",
        "--set",
        "data.batch_size=4",
    ]
    with pytest.warns(UserWarning, match="0177_mask.png \\(7\\)"):
        assert main(args) == 0

    masks = tmp_path / "masks"
    ckpt = str(run / "checkpoints" / "best.ckpt")
    assert (
        main(["predict", "--ckpt", ckpt, "--images", str(data / "validation"), "--out", str(masks)])
        == 0
    )
    assert sorted(p.name for p in masks.iterdir()) == [
        "0013.png",
        "0062.png",
        "0104.png",
        "0177.png",
    ]
    assert np.asarray(Image.open(masks / "0013.png")).shape == (512, 512, 3)

    scores = tmp_path / "scores.json"
    evaluate = ["evaluate", "--gt", str(data / "validation"), "--pred", str(masks)]
    with pytest.warns(UserWarning, match="0177_mask.png \\(7\\)"):  # the truth's red pixels
        assert main([*evaluate, "--json", str(scores)]) == 0
    s = json.loads(scores.read_text())
    header = (run / "metrics.csv").read_text().splitlines()
    val_miou = float(header[1].split(",")[header[0].split(",").index("val_miou")])
    # 4 tiles and a 1-epoch model: a class absent from both makes the course's mean nan (null);
    # training monitors the mean over the present classes
    assert (s["miou"] is None) == bool(s["absent_classes"])
    assert s["miou_present"] == pytest.approx(val_miou, abs=1e-5)
    assert len(s["confusion"]) == 7 and sum(map(sum, s["confusion"])) == 4 * 512 * 512

    tta = tmp_path / "tta"
    predict = ["predict", "--ckpt", ckpt, "--images", str(data / "validation"), "--out", str(tta)]
    assert main([*predict, "--tta"]) == 0
    sh_out = tmp_path / "sh"
    env = dict(os.environ, VISLAB_P2_CKPT=ckpt)
    subprocess.run(
        ["bash", str(REPO / "hw1_2.sh"), str(data / "validation"), str(sh_out)],
        check=True,
        env=env,
        capture_output=True,
    )
    for name in ("0013.png", "0177.png"):
        assert (sh_out / name).read_bytes() == (tta / name).read_bytes()
