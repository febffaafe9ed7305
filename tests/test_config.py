import re
from pathlib import Path

import pytest
from conftest import REPO

from vislab.config import load_config, parse_override
from vislab.errors import VislabError


def test_recipe_holds_the_reports_settings():
    cfg = load_config(REPO / "configs" / "p1_model_a.yaml")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum) == ("sgd", 0.01, 0.9)
    assert cfg.optim.weight_decay == pytest.approx(1e-4)
    assert cfg.trainer.epochs == 90 and cfg.model.name == "model_a"
    b = load_config(REPO / "configs" / "p1_model_b.yaml")
    assert b.trainer.epochs == 200 and b.model.name == "torchvision/resnext101_64x4d"


def test_overrides_are_yaml_typed_and_reach_nested_keys():
    cfg = load_config(None, ["optim.lr=0.5", "data.hflip=true", "model.kwargs.width=8"])
    assert cfg.optim.lr == 0.5 and cfg.data.hflip is True
    assert cfg.model.kwargs == {"width": 8}
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])


def test_int_is_accepted_for_float_and_scientific_strings_parse(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 1\n  weight_decay: 1e-4\n")
    cfg = load_config(p)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=0.1", "unknown config key(s): optim.lrr"),
        ("optim.lr=fast", "optim.lr: expected float"),
        ("trainer.epochs=1.5", "trainer.epochs: expected int"),
        ("trainer.epochs=true", "trainer.epochs: expected int"),
        ("optim.name=rmsprop", "optim.name: 'rmsprop' is not one of"),
        ("data=3", "data: expected a mapping"),
        ("novalue", "must look like key.sub=value"),
        ("optim.class_weights=balanced", "optim.class_weights: only for task segmentation"),
        ("optim.lovasz_weight=1", "optim.lovasz_weight: 1.0 must be >= 0, and is only for task"),
        ("data.mixup=-0.2", "data.mixup: -0.2 must be >= 0, and is only for task classification"),
        ("data.cutmix=.nan", "data.cutmix: nan is not a finite number"),
        ("data.mixup=.inf", "data.mixup: inf is not a finite number"),
        ("task=segmentation optim.lovasz_weight=.inf", "lovasz_weight: inf is not a finite"),
        ("optim.momentum=5", "optim.momentum: 5.0 must be below 1 (SGD's velocity keeps"),
        ("optim.momentum=1", "optim.momentum: 1.0 must be below 1"),
        ("data.ignore_index=256", "data.ignore_index: 256 must be <= 255"),
        ("data.ignore_index=-1", "data.ignore_index: -1 must be >= 0"),
        ("model.num_classes=1000000", "model.num_classes: 1000000 must be <= 100000"),
        ("data=[]", "config key data: expected a mapping, got []"),
        ("optim=false", "config key optim: expected a mapping, got False"),
        ("model=''", "config key model: expected a mapping, got ''"),
        (
            "data.root=/nowhere data.train=/d/train data.val=/d/val",
            "data.root: /nowhere would go unused: data.train and data.val (/d/train, /d/val)",
        ),
        ("task=segmentation data.cutmix=1", "data.cutmix: 1.0 must be >= 0, and is only for"),
        ("trainer.epochs=0", "trainer.epochs: 0 must be >= 1"),
        ("trainer.epochs=-1", "trainer.epochs: -1 must be >= 1"),
        ("data.batch_size=0", "data.batch_size: 0 must be >= 1"),
        ("trainer.threads=-1", "trainer.threads: -1 must be >= 1"),
        ("data.crop_padding=-4", "data.crop_padding: -4 must be >= 0"),
        ("optim.lr=.nan", "optim.lr: nan is not a finite number"),
        ("optim.lr=-0.1", "optim.lr: -0.1 must be >= 0.0"),
        ("optim.weight_decay=-1e-4", "optim.weight_decay: -0.0001 must be >= 0.0"),
        ("data.vflip=true", "data.vflip: only for task segmentation (a classification run"),
        (
            "data.auto_augment=autoaugment",
            "data.auto_augment: 'autoaugment' is not one of null, trivialaugment, randaugment, "
            "autoaugment-imagenet, autoaugment-cifar10",
        ),
        ("task=segmentation data.auto_augment=trivialaugment", "auto_augment: only for task c"),
        ("data.random_erasing=1.5", "data.random_erasing: 1.5 must be <= 1.0"),
        ("trainer.ema=1", "trainer.ema: 1.0 must be below 1 (the average keeps this share"),
        ("trainer.ema=-0.5", "trainer.ema: -0.5 must be >= 0.0"),
        ("optim.distill_weight=0.9", "config key optim.distill_weight: only with model.teacher"),
        ("optim.distill_weight=2 model.teacher=t.ckpt", "optim.distill_weight: 2.0 must be <= 1"),
        ("task=segmentation model.teacher=t.ckpt", "model.teacher: only for task classification"),
        ("optim.distill_temperature=4", "optim.distill_temperature: only with model.teacher"),
        ("model.teacher=t optim.distill_temperature=0", "distill_temperature: 0.0 must be above"),
        ("model.teacher=t optim.distill_temperature=-2", "distill_temperature: -2.0 must be >="),
        ("data.random_erasing=-0.1", "data.random_erasing: -0.1 must be >= 0.0"),
        ("task=segmentation data.random_erasing=0.25", "random_erasing: only for task classif"),
        ("task=segmentation data.crop_padding=4", "data.crop_padding: only for task classif"),
        ("trainer.epochs=5 trainer.snapshots=[0]", "trainer.snapshots: 0 is not an epoch of"),
        (
            "trainer.epochs=5 trainer.snapshots=[1,9]",
            "snapshots: 9 is not an epoch of the run (1..5)",
        ),
        ("optim.label_smoothing=1.5", "optim.label_smoothing: 1.5 must be <= 1"),
        ("optim.name=adamw optim.nesterov=true", "optim.nesterov: true is SGD's; adamw would"),
        ("optim.name=adamw optim.momentum=0.95", "optim.momentum: 0.95 is SGD's"),
        ("optim.nesterov=true optim.momentum=0", "Nesterov needs optim.momentum above 0"),
        (  # torch's OneCycleLR would overwrite it
            "optim.schedule=onecycle optim.momentum=0.5",
            "optim.momentum: 0.5 would go unused: the one-cycle schedule sets SGD's momentum",
        ),
        ("task=segmentation data.val_labels=v.csv", "data.val_labels: only for task classif"),
        ("data.ignore_index=0", "data.ignore_index: only for task segmentation"),
        ("data.classes=[a,a,b]", "data.classes: 'a' is listed twice"),  # predicted as one
        ("data.classes=[a,'',b]", "data.classes: a name is empty"),
        ("task=segmentation data.classes=[x,y,x]", "data.classes: 'x' is listed twice"),
        ("data.crop_padding=0 data.image_size=13378", "data.image_size: 13378 must be <= 13377"),
    ],
)
def test_bad_config_is_refused_with_the_key(override, message):
    with pytest.raises(VislabError, match=re.escape(message)):
        load_config(None, override.split(" "))


@pytest.mark.parametrize(
    "weights, message",
    [
        ("[1, .inf, 1, 1, 1, 1, 1]", "optim.class_weights[1]: inf is not a finite number"),
        ("[1, 1, 1, 1, 1, 1, .nan]", "optim.class_weights[6]: nan is not a finite number"),
        ("[1, 2, 3]", "expected 7 weights (one per class)"),
        ("[1, 1, 1, 1, 1, 1, -1]", "none negative"),
        ("[0, 0, 0, 0, 0, 0, 0]", "not all 0"),
        ("inverse", "'inverse' is not a list of weights or balanced"),
        ("3", "expected a list"),
    ],
)
def test_bad_class_weights_are_refused_before_any_data_is_read(weights, message):
    with pytest.raises(VislabError, match=re.escape(message)):
        load_config(
            REPO / "configs" / "p2_cpu.yaml",
            ["data.spec=landcover", f"optim.class_weights={weights}"],
        )


def test_class_weights_are_a_list_per_class_or_balanced():
    recipe = REPO / "configs" / "p2_cpu.yaml"
    assert load_config(recipe, ["optim.class_weights=balanced"]).optim.class_weights == "balanced"
    w = load_config(recipe, ["optim.class_weights=[1, 0.5, 2, 1, 3, 1, 0]"]).optim.class_weights
    assert w == [1.0, 0.5, 2.0, 1.0, 3.0, 1.0, 0.0]


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(VislabError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(VislabError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_recipe_loads(recipe):
    from vislab.ensembles import is_ensemble, member_configs

    path = REPO / "configs" / recipe
    if is_ensemble(path):  # every member's config loads
        configs = [cfg for _, cfg in member_configs(path)]
    else:
        configs = [load_config(path)]
    for cfg in configs:
        assert cfg.trainer.epochs > 0
        assert cfg.model.num_classes is None  # the data tells: its classes, or the course's spec


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["data.std=[0.2, 0.2, 0.2]"], "data.std is used only with the other"),
        (["data.mean=[0.5, 0.5, 0.5]"], "data.mean is used only with the other"),
        (["data.mean=[0.5, 0.5, 0.5]", "data.std=[0.2, 0, 0.2]"], "std must be above 0"),
        (["data.mean=[0.5, 0.5]", "data.std=[0.2, 0.2, 0.2]"], "mean must be 3 numbers"),
    ],
)
def test_statistics_are_used_whole_or_refused(sets, message):
    with pytest.raises(VislabError, match=re.escape(message)):
        load_config(REPO / "configs" / "p1_model_a.yaml", sets)


def test_a_saved_config_with_a_root_beside_absolute_folders_stays_readable(tmp_path):
    """data.root beside absolute data.train and data.val is refused in a recipe; a run saved
    with them (as older versions allowed) is still read by report, predict and resume."""
    from vislab.config import config_from_dict
    from vislab.run_folder import RunFolder

    recipe = tmp_path / "config.yaml"
    recipe.write_text("data:\n  root: /nowhere\n  train: /d/train\n  val: /d/val\n")
    with pytest.raises(VislabError, match=r"data.root: /nowhere would go unused"):
        load_config(recipe)
    assert RunFolder(tmp_path).config().data.train == "/d/train"
    with pytest.raises(VislabError, match=r"data.mean is used only with the other"):
        config_from_dict({"data": {"mean": [0.5, 0.5, 0.5]}})


def test_recipes_are_bounded_plain_yaml(tmp_path):
    import os

    laughs = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n"
    (tmp_path / "laughs.yaml").write_text(laughs)
    with pytest.raises(VislabError, match=r"an alias \(\*a\) at line 2"):
        load_config(tmp_path / "laughs.yaml")
    with pytest.raises(VislabError, match="an alias"):
        load_config(None, ["model.kwargs=[&k 1, *k]"])
    big = tmp_path / "big.yaml"
    big.write_text("seed: 0\n" + "#" * (2 << 20))
    with pytest.raises(VislabError, match="is no recipe"):
        load_config(big)
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would wait for a writer forever
    with pytest.raises(VislabError, match=r"pipe.yaml is a FIFO \(named pipe\), not a config"):
        load_config(tmp_path / "pipe.yaml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("1: x\nseed: 0\n", "the recipe: the key 1 is not a name (YAML reads it as int"),
        ("data:\n  true: 1\n", "config key data: the key True is not a name"),
        ("model:\n  kwargs:\n    7: x\n", "config key model.kwargs: the key 7 is not a name"),
        ("seed: 1\nseed: 2\n", "the key 'seed' is given twice (lines 1 and 2)"),
        ("data:\n  hflip: true\n  hflip: false\n", "the key 'hflip' is given twice (lines 2"),
        ("seed: " + "[" * 50000 + "]" * 50000, "nested deeper than 100 levels (line 1"),
        ("data: []\n", "config key data: expected a mapping, got []"),
    ],
)
def test_recipes_are_plain_keys_and_values(text, message, tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(VislabError, match=re.escape(message)):
        load_config(p)


def test_deep_or_repeated_override_values_are_one_short_line():
    deep = "model.kwargs=" + "[" * 50000 + "]" * 50000
    with pytest.raises(VislabError, match="nested deeper than 100 levels") as e:
        load_config(None, [deep])
    assert len(str(e.value)) < 300
    with pytest.raises(VislabError, match="the key 'a' is given twice"):
        load_config(None, ["model.kwargs={a: 1, a: 2}"])
    nested = "[" * 50 + "]" * 50  # deep enough for any recipe
    assert load_config(None, [f"model.kwargs={{x: {nested}}}"]).model.kwargs["x"]
    assert load_config(None, ["data="]).data.batch_size == 64  # empty: the defaults
    assert load_config(None, ["optim.momentum=0.99"]).optim.momentum == 0.99
    cfg = load_config(None, ["data.root=/d", "data.train=/d/train", "data.val=val"])
    assert cfg.data.resolve(cfg.data.val) == Path("/d/val")  # the root is used for val
