"""model.teacher: a classifier's probabilities for the training images as soft targets."""

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import jolted_checkpoint, seg_train_args, train_args

from vislab.cli import main
from vislab.data.images import load_labeled
from vislab.errors import VislabError
from vislab.report.result import details
from vislab.report.run import read_run
from vislab.train.distill import Teacher


def _rows(run):
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def teacher(p1_tiny, tmp_path_factory):
    """A Model A run's best.ckpt with its weights jolted: it disagrees with the labels on some
    images and its mirror view differs from the image's."""
    tmp = tmp_path_factory.mktemp("teacher")
    assert main(train_args(p1_tiny, tmp / "run", 1)) == 0
    return jolted_checkpoint(tmp / "run" / "checkpoints" / "best.ckpt", tmp / "teacher.ckpt")


def test_the_targets_are_the_teachers_mirror_averaged_probabilities(teacher, p1_tiny, tmp_path):
    train = load_labeled(p1_tiny / "train_50")
    probs = Teacher(teacher).targets(train.images, train.labels, train.classes, batch_size=7)
    assert probs.shape == (64, 4) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(1), torch.ones(64), atol=1e-5)
    # by hand: the model on the normalised image and on its mirror, softmax, mean
    t = Teacher(teacher)
    x = torch.from_numpy(train.images).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (t.meta.mean, t.meta.std))
    x = (x - mean) / std
    with torch.no_grad():
        by_hand = (t.model(x).softmax(1) + t.model(x.flip(3)).softmax(1)) / 2
    assert torch.allclose(probs, by_hand, atol=1e-5)
    # and their classes are what `vislab predict --tta` says of the same images
    out = tmp_path / "p.csv"
    args = ["--ckpt", str(teacher), "--images", str(p1_tiny / "train_50"), "--out", str(out)]
    assert main(["predict", *args, "--tta", "--threads", "1"]) == 0
    predicted = [r["label"] for r in csv.DictReader(out.open())]
    assert predicted == [train.classes[i] for i in probs.argmax(1).tolist()]


def test_weight_0_trains_as_without_a_teacher_and_weight_1_learns_the_teacher(
    teacher, p1_tiny, tmp_path, capsys
):
    runs = {}
    for name, sets in (
        ("plain", []),
        ("w0", [f"model.teacher={teacher}", "optim.distill_weight=0"]),
        ("w1", [f"model.teacher={teacher}", "optim.distill_weight=1"]),
    ):
        out = tmp_path / name
        assert main(train_args(p1_tiny, out, 1, *[a for s in sets for a in ("--set", s)])) == 0
        runs[name] = _rows(out)[0]
    said = capsys.readouterr().out
    assert f"teacher: model_a of {teacher}, probabilities of 64 train images in" in said
    assert "(its class is the label for 0." in said  # the jolted teacher errs on some
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    assert [runs["w0"][k] for k in keys] == [runs["plain"][k] for k in keys]
    assert runs["w1"]["train_loss"] != runs["plain"]["train_loss"]
    saved = yaml.safe_load((tmp_path / "w1" / "config.yaml").read_text())
    assert saved["model"]["teacher"] == str(teacher.resolve())
    loss = dict(details(read_run(tmp_path / "w1")))["loss"]
    assert loss == f"cross-entropy; 1.0 of it against the probabilities of the teacher {teacher}"


def test_the_loss_weighs_the_labels_and_the_teacher(teacher):
    from vislab.infer.meta import ModelMeta
    from vislab.train.classification import ClassificationTask

    meta = ModelMeta(
        task="classification",
        model="model_a",
        num_classes=4,
        model_kwargs={},
        classes=list("0123"),
        mean=[0.5] * 3,
        std=[0.25] * 3,
        image_size=[32, 32],
    )
    task = ClassificationTask(meta, model="model_a", distill_weight=0.25, label_smoothing=0.1)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    probs = torch.rand(6, 4, generator=g).softmax(1)
    log_p = logits.log_softmax(1)
    smooth = F.one_hot(labels, 4) * 0.9 + 0.1 / 4
    expected = 0.75 * -(smooth * log_p).sum(1).mean() + 0.25 * -(probs * log_p).sum(1).mean()
    assert torch.allclose(task._loss(logits, labels, probs), expected, atol=1e-6)
    assert torch.allclose(task._loss(logits, labels, None), -(smooth * log_p).sum(1).mean())
    # at temperature 2 both sides are softened and the teacher's term is scaled by 4
    task.hparams.distill_temperature = 2.0
    soft = (probs.log() / 2).softmax(1)
    kd = -(soft * (logits / 2).log_softmax(1)).sum(1).mean()
    expected = 0.75 * -(smooth * log_p).sum(1).mean() + 0.25 * 4 * kd
    assert torch.allclose(task._loss(logits, labels, probs), expected, atol=1e-6)


def test_a_teacher_that_does_not_fit_is_one_line_before_training(
    teacher, p1_tiny, p2_tiny, tmp_path, capsys
):
    seg = tmp_path / "seg"
    assert main(seg_train_args(p2_tiny, seg, 1)) == 0
    five = tmp_path / "five"
    from vislab.data.synthetic import write_p1_layout

    five_data = write_p1_layout(tmp_path / "d5", num_classes=5, per_class=4)
    capsys.readouterr()
    cases = [
        (tmp_path / "none.ckpt", "model.teacher: ", "none.ckpt"),
        (seg / "checkpoints" / "best.ckpt", "is a segmentation model, not classification", ""),
    ]
    for path, said, named in cases:
        out = tmp_path / f"s{len(said)}"
        assert main(train_args(p1_tiny, out, 1, "--set", f"model.teacher={path}")) == 2
        err = capsys.readouterr().err
        assert said in err and named in err and err.count("\n") == 1, err
        assert not (out / "checkpoints").exists()
    # other classes; another image size
    args = train_args(five_data, five, 1, "--set", f"model.teacher={teacher}")
    args[args.index("model.num_classes=4")] = "model.num_classes=5"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "classifies 4 classes (0, 1, 2, 3) and the data holds 5 (0, 1, 2, 3, 4)" in err
    sets = ["--set", f"model.teacher={teacher}", "--set", "data.image_size=16"]
    assert main(train_args(p1_tiny, tmp_path / "small", 1, *sets)) == 2
    err = capsys.readouterr().err
    assert "was trained on 32x32 images and the run's are 16x16 (data.image_size)" in err


def test_teacher_batches_follow_the_free_memory(teacher, p1_tiny, monkeypatch):
    import vislab.infer.predict as predict

    train = load_labeled(p1_tiny / "train_50")
    monkeypatch.setattr(predict, "available_memory", lambda: 1)
    with pytest.raises(VislabError, match="model.teacher .* needs about .* give a smaller teacher"):
        Teacher(teacher).targets(train.images, train.labels, train.classes, batch_size=64)
    assert np.array_equal(train.labels, load_labeled(p1_tiny / "train_50").labels)
