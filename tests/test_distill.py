"""model.teacher: a classifier's probabilities for the training images as soft targets."""

import csv

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import jolted_checkpoint, seg_train_args, train_args

from vislab.cli import main
from vislab.data.batches import TensorImageDataset
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


def _attached(teacher, data, cache, batch_size=7):
    train = load_labeled(data / "train_50")
    dataset = TensorImageDataset(train.images, train.labels)
    t = Teacher(teacher, torch.device("cpu"))
    t.attach(dataset, train.classes, batch_size, cache, rank=0)
    return t, train, dataset.targets


def test_the_targets_are_the_teachers_mirror_averaged_log_probabilities(teacher, p1_tiny, tmp_path):
    t, train, log_probs = _attached(teacher, p1_tiny, tmp_path / "targets.pt")
    assert log_probs.shape == (64, 4) and log_probs.dtype == torch.float32
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(64), atol=1e-5)
    # by hand: the model on the normalised image and on its mirror, softmax, mean, log
    x = torch.from_numpy(train.images).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (t.meta.mean, t.meta.std))
    x = (x - mean) / std
    with torch.no_grad():
        by_hand = ((t.model(x).softmax(1) + t.model(x.flip(3)).softmax(1)) / 2).log()
    assert torch.allclose(log_probs, by_hand, atol=1e-5)
    # and their classes are what `vislab predict --tta` says of the same images
    out = tmp_path / "p.csv"
    args = ["--ckpt", str(teacher), "--images", str(p1_tiny / "train_50"), "--out", str(out)]
    assert main(["predict", *args, "--tta", "--threads", "1"]) == 0
    predicted = [r["label"] for r in csv.DictReader(out.open())]
    assert predicted == [train.classes[i] for i in log_probs.argmax(1).tolist()]


def test_the_run_keeps_its_targets_and_refuses_a_teacher_file_that_changed(
    teacher, p1_tiny, tmp_path
):
    cache = tmp_path / "targets.pt"
    first = _attached(teacher, p1_tiny, cache)[2]
    # kept: read back as they were, whatever the batch size, without running the teacher
    assert torch.equal(_attached(teacher, p1_tiny, cache, batch_size=64)[2], first)
    changed = tmp_path / "changed.ckpt"
    ckpt = torch.load(teacher, weights_only=True)
    ckpt["state_dict"]["model.fc3.bias"][0] += 200.0  # class 0 by far
    torch.save(ckpt, changed)
    with pytest.raises(VislabError, match="changed since the run started"):
        _attached(changed, p1_tiny, cache)
    # the other classes' probabilities underflow float32 (e^-200); their logarithms are kept
    sure = _attached(changed, p1_tiny, tmp_path / "other.pt")[2]
    assert torch.isfinite(sure).all() and sure[:, 1:].max() < -150


def test_weight_0_trains_as_without_a_teacher_and_weight_1_learns_the_teacher(
    teacher, p1_tiny, tmp_path, capsys
):
    runs = {}
    for name, sets in (
        ("plain", []),
        ("w0", [f"model.teacher={teacher}", "optim.distill_weight=0"]),
        (
            "w1",
            [f"model.teacher={teacher}", "optim.distill_weight=1", "optim.distill_temperature=2"],
        ),
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
    ckpt = torch.load(tmp_path / "w1" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["distill_temperature"] == 2.0
    assert (tmp_path / "w1" / "teacher_targets.pt").is_file()
    loss = dict(details(read_run(tmp_path / "w1")))["loss"]
    assert loss == (
        f"cross-entropy; 1.0 of it against the probabilities of the teacher {teacher} at "
        "temperature 2.0"
    )


def _task(**hparams):
    """A Model A classification task of 4 classes with these hyperparameters."""
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
    return ClassificationTask(meta, model="model_a", **hparams)


def test_the_loss_weighs_the_labels_and_the_teacher():
    task = _task(distill_weight=0.25, label_smoothing=0.1)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    probs = torch.rand(6, 4, generator=g).softmax(1)
    log_p = logits.log_softmax(1)
    smooth = F.one_hot(labels, 4) * 0.9 + 0.1 / 4
    expected = 0.75 * -(smooth * log_p).sum(1).mean() + 0.25 * -(probs * log_p).sum(1).mean()
    assert torch.allclose(task._loss(logits, labels, probs.log()), expected, atol=1e-6)
    assert torch.allclose(task._loss(logits, labels, None), -(smooth * log_p).sum(1).mean())
    # at temperature 2 both sides are softened and the teacher's term is scaled by 4
    task.hparams.distill_temperature = 2.0
    soft = (probs.log() / 2).softmax(1)
    kd = -(soft * (logits / 2).log_softmax(1)).sum(1).mean()
    expected = 0.75 * -(smooth * log_p).sum(1).mean() + 0.25 * 4 * kd
    assert torch.allclose(task._loss(logits, labels, probs.log()), expected, atol=1e-6)


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


def test_teacher_batches_follow_the_free_memory(teacher, p1_tiny, tmp_path, monkeypatch):
    import vislab.infer.predict as predict

    monkeypatch.setattr(predict, "available_memory", lambda: 1)
    with pytest.raises(VislabError, match="model.teacher .* needs about .* give a smaller teacher"):
        _attached(teacher, p1_tiny, tmp_path / "t.pt", batch_size=64)
    assert not (tmp_path / "t.pt").exists()


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_mixup_mixes_the_teachers_targets_as_it_mixes_the_labels():
    from vislab.data.augment import mix_batch

    task = _task(mixup=0.4, distill_weight=0.5)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (8,), generator=g)
    log_p = torch.randn(8, 4, generator=g).log_softmax(1)
    loss = task.training_step((x, y, log_p), 0)
    mixed, order, lam = mix_batch(task._input(x), 0.4, 0.0, task._generator(0))
    logits = task.model(mixed)
    expected = lam * task._loss(logits, y, log_p) + (1 - lam) * task._loss(
        logits, y[order], log_p[order]
    )
    assert 0 < lam < 1 and not torch.equal(order, torch.arange(8))
    assert torch.allclose(loss, expected, atol=1e-6)
