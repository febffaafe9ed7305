import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import train_args
from stalling import stalled_at

from vislab.analysis.embed import scores_2d
from vislab.cli import main


def test_embed_a_run_writes_figures_coordinates_and_scores(p1_tiny, tmp_path):
    run = tmp_path / "run"
    assert main(train_args(p1_tiny, run, 3)) == 0
    assert main(["embed", str(run)]) == 0
    out = run / "embed"
    m = json.loads((out / "metrics.json").read_text())
    assert [t["epoch"] for t in m["tsne"]] == [1, 2, 3]
    assert m["feature_dim"] == 128 and m["n"] == 16
    assert sum(m["pca"]["explained_variance"]) <= 1.0
    coords = np.load(out / "coords.npz")
    assert coords["pca"].shape == (16, 2) and coords["tsne_epoch_3"].shape == (16, 2)
    assert coords["labels"].tolist() == sorted(coords["labels"].tolist())
    for name in ("pca.png", "tsne.png"):
        assert (out / name).stat().st_size > 10_000


def test_embed_one_checkpoint_needs_a_labeled_folder(p1_tiny, tmp_path, capsys):
    run = tmp_path / "run"
    main(train_args(p1_tiny, run, 1))
    ckpt = run / "checkpoints" / "best.ckpt"
    assert main(["embed", str(ckpt)]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert (
        main(["embed", str(ckpt), "--data", str(p1_tiny / "val_50"), "--out", str(tmp_path / "e")])
        == 0
    )
    tsne = json.loads((tmp_path / "e" / "metrics.json").read_text())["tsne"]
    assert [t["epoch"] for t in tsne] == [1]  # best.ckpt of a 1-epoch run: epoch 1, 1-based


def test_2d_scores_separate_clusters_from_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    clustered = rng.normal(size=(100, 2)) * 0.1 + labels[:, None] * 3
    noise = rng.normal(size=(100, 2))
    good, bad = scores_2d(clustered, labels), scores_2d(noise, labels)
    assert good["knn_acc_2d"] == pytest.approx(1.0) and good["silhouette_2d"] > 0.8
    assert bad["knn_acc_2d"] < 0.5 and bad["silhouette_2d"] < 0.1


# an embed that stops once its coordinates, scores and PCA figure are written, so that it can
# be stopped before its t-SNE figure
STALLED = stalled_at("vislab.analysis.embed_plots", "plot_tsne", "stalled", call_through=False)


@pytest.fixture(scope="module")
def embedded(p1_tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("embedded") / "run"
    assert main(train_args(p1_tiny, run, 2)) == 0
    assert main(["embed", str(run)]) == 0
    return run


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_embed_stopped_half_way_leaves_the_earlier_results_whole(embedded, p1_tiny):
    before = _files(embedded / "embed")
    argv = ["embed", str(embedded), "--data", str(p1_tiny / "train_50")]  # other results
    proc = subprocess.Popen([sys.executable, "-c", STALLED, *argv], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"stalled"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    assert _files(embedded / "embed") == before  # no new coordinates beside old figures
    assert [p.name for p in embedded.glob(".embed.*")] == []  # nor a scratch folder left


def test_a_second_embed_into_the_same_folder_is_refused_at_once(embedded, capsys):
    from vislab.fileio import exclusive

    before = _files(embedded / "embed")
    with exclusive(embedded / "embed", "--out"):  # a first embed, still writing
        assert main(["embed", str(embedded)]) == 2
    err = capsys.readouterr().err
    assert f"the embed folder {embedded / 'embed'} is being written by another vislab" in err
    assert "features of epoch" not in err  # refused before any work
    assert _files(embedded / "embed") == before
