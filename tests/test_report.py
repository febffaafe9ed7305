import csv
import json
import re
import shutil

import numpy as np
import pytest
from conftest import seg_train_args, train_args

from vislab.cli import main
from vislab.data.landcover import CLASSES
from vislab.data.tiles import balanced_weights, load_tiles


@pytest.fixture(scope="module")
def runs(p1_tiny, p2_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("report_runs")
    cls, seg = root / "cls", root / "seg"
    assert main(train_args(p1_tiny, cls, 3)) == 0
    assert main(["embed", str(cls)]) == 0
    assert main(seg_train_args(p2_tiny, seg, 2)) == 0
    return cls, seg


def test_report_embeds_figures_and_reads_numbers_from_the_runs(runs, tmp_path):
    cls, seg = runs
    assert main(["progress", str(seg), "--tiles", "0000", "0001"]) == 0
    assert main(["report", str(cls), str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    # 2 curves, 2 per-class charts, 2 class-balance charts, PCA, t-SNE, progress, a
    # score-against-minutes figure per problem
    assert html.count("data:image/png;base64,") == 11
    with (cls / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    best = max(range(len(rows)), key=lambda i: float(rows[i]["val_acc"]))
    minutes = sum(float(r["epoch_s"]) for r in rows[: best + 1]) / 60
    assert f"{float(rows[best]['val_acc']):.4f}" in html
    assert f"reached: cls {float(rows[best]['val_acc']):.4f} after {minutes:.0f} min" in html
    assert "Missing:" not in html
    # the report's Model B runs are absent: shown as missing rows, never invented
    assert html.count("no run given") == 3  # resnext101, fcn32s, deeplabv3
    # the CPU segmenter is labelled as the stand-in it is, not as the report's Model B
    role = "CPU stand-in for Model B, from scratch (LR-ASPP MobileNetV3)"
    assert f"<td>lraspp_mobilenet_v3</td><td>{role}</td>" in html
    for name in (
        "model_a",
        "resnext101_64x4d",
        "fcn32s_vgg16",
        "deeplabv3_resnet50",
        "lraspp_mobilenet_v3",
    ):
        assert f"<b>{name}</b>" in html  # every architecture has its layer table
    md = (tmp_path / "rep" / "report.md").read_text()
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (tmp_path / "rep" / link).is_file()
    assert "## Problem 1" in md and "## Problem 2" in md


def test_missing_analysis_is_shown_as_missing_not_invented(runs, tmp_path):
    cls, seg = runs
    (seg / "progress.png").unlink(missing_ok=True)
    assert main(["report", str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Missing: mask progress figure" in html
    assert "No classification run was given" in html


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_two_runs_of_one_folder_name_keep_their_own_figures(runs, tmp_path):
    cls, _ = runs
    copies = []
    for parent in ("a", "b"):
        copy = tmp_path / parent / cls.name
        shutil.copytree(cls, copy)
        copies.append(copy)
    rows = (copies[1] / "metrics.csv").read_text().splitlines()
    # the second copy's curve differs: its last epoch's validation accuracy is halved
    head, last = rows[0].split(","), rows[-1].split(",")
    i = head.index("val_acc")
    last[i] = f"{float(last[i]) / 2:.6f}"
    (copies[1] / "metrics.csv").write_text("\n".join([*rows[:-1], ",".join(last)]) + "\n")
    out = tmp_path / "rep"
    assert main(["report", *map(str, copies), "--out", str(out)]) == 0
    curves = sorted(p.name for p in (out / "figures").glob("*_curves.png"))
    assert curves == [f"a-{cls.name}_curves.png", f"b-{cls.name}_curves.png"]
    a, b = ((out / "figures" / c).read_bytes() for c in curves)
    assert a != b
    html = (out / "report.html").read_text()
    assert f"a-{cls.name}" in html and f"b-{cls.name}" in html


def test_the_report_replaces_an_old_one_whole(runs, tmp_path, monkeypatch):
    cls, _ = runs
    out = tmp_path / "rep"
    assert main(["report", str(cls), "--out", str(out)]) == 0
    before = (out / "report.html").read_bytes()

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    import vislab.fileio

    monkeypatch.setattr(vislab.fileio.os, "replace", full_disk)
    assert main(["report", str(cls), "--out", str(out)]) == 2
    assert (out / "report.html").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_per_class_scores_over_training_come_from_the_runs(runs, tmp_path):
    cls, seg = runs
    assert main(["report", str(cls), str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Per-class accuracy over training" in html and "Per-class IoU over training" in html
    with (seg / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    ious = {c: float(rows[-1][f"val_iou_{c}"]) for c in ("urban", "agriculture", "rangeland")}
    ious |= {c: float(rows[-1][f"val_iou_{c}"]) for c in ("forest", "water", "barren")}
    weakest = min(ious, key=ious.get)
    assert f"The weakest class at the end is {weakest} ({ious[weakest]:.3f})" in html
    embed = json.loads((cls / "embed" / "metrics.json").read_text())
    last = embed["per_class_accuracy"][-1]
    assert len(embed["per_class_accuracy"]) == len(embed["tsne"])  # one per snapshot
    coords = np.load(cls / "embed" / "coords.npz")
    preds, labels = coords[f"pred_epoch_{last['epoch']}"], coords["labels"]
    for c, acc in last["accuracy"].items():
        assert acc == pytest.approx(float((preds[labels == int(c)] == int(c)).mean()))


def test_class_balance_is_what_training_counted(runs, p2_tiny, tmp_path):
    _, seg = runs
    counted = json.loads((seg / "class_balance.json").read_text())
    masks = load_tiles(p2_tiny / "train", size=32).masks  # the run's data.image_size
    assert counted["unit"] == "pixels"
    assert counted["train"] == np.bincount(masks.ravel(), minlength=7).tolist()
    assert main(["report", str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    weights = balanced_weights(counted["train"])
    named = ", ".join(f"{c} {w:g}" for c, w in zip(CLASSES[:6], weights[:6], strict=True))
    assert f"optim.class_weights: balanced would weigh the loss {named}." in html
    train = [n / sum(counted["train"]) for n in counted["train"][:6]]
    smallest = min(range(6), key=train.__getitem__)
    assert f"Smallest class: {CLASSES[smallest]}, {train[smallest]:.1%} of the train pixels" in html
