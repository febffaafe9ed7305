"""Run configuration: YAML recipes, dotted overrides, validation, the resolved copy.

A recipe is a YAML file whose keys mirror the dataclasses below. Unknown keys and values of
the wrong type are refused with the dotted key in the message, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vislab.config_keys import TASK_ONLY, build
from vislab.errors import VislabError
from vislab.fileio import require_file
from vislab.yamlfile import RefusedYAML, parse_yaml, read_yaml_mapping

# the (training, validation) folders data.root is searched for, in order, when the recipe
# names none: the course's Problem 1 layout, then the usual ones (the last is Problem 2's)
SPLIT_LAYOUTS = (("train_50", "val_50"), ("train", "val"), ("train", "validation"))


@dataclass
class DataConfig:
    root: str | None = None  # --data ROOT: holds the training and validation folders
    # relative to root, or absolute; null = the first of SPLIT_LAYOUTS found under root
    train: str | None = None
    val: str | None = None
    val_labels: str | None = None  # a filename,label CSV; null = labels from the file names
    image_size: int | None = None  # resize every image to this square size; null = refuse mixed
    max_per_class: int | None = None  # classification: at most N train images per class
    limit: int | None = None  # segmentation: only the first N tiles of train and val (quick runs)
    batch_size: int = 64
    eval_batch_size: int = 500
    crop_padding: int = 0  # random crop after reflect padding by this many pixels; 0 = off
    hflip: bool = False  # random horizontal flips
    # classification: MixUp / CutMix, each the alpha of lam ~ Beta(alpha, alpha); 0 = off;
    # with both on, each batch takes one of the two at even odds
    mixup: float = 0.0
    cutmix: float = 0.0
    # classification: an augmentation policy per image (trivialaugment | randaugment |
    # autoaugment-imagenet | autoaugment-cifar10, torchvision's), before normalisation
    auto_augment: str | None = None
    # classification: the probability that an image gets one random rectangle set to 0 after
    # normalisation (random erasing, torchvision's area 2-33% and aspect 0.3-3.3); 0 = off
    random_erasing: float = 0.0
    vflip: bool = False  # segmentation: random vertical flips
    rot90: bool = False  # segmentation: random rotations by multiples of 90 degrees
    crop_size: int | None = None  # segmentation: random square crops of this size
    # where the decoded sets live: memory, disk (a memory-mapped cache under $VISLAB_CACHE or
    # ~/.cache/vislab, shared by processes, for sets larger than memory; data/store.py), or
    # auto (the disk when the set, once per training process here, passes half the memory
    # available)
    store: str = "auto"
    mean: list[float] | None = None  # per-channel, 0-1 scale; null = train set (or model.init)
    std: list[float] | None = None
    # the data set spec (vislab/data/spec.py). segmentation: a built-in one by name
    # (landcover: the course's, the default for its xxxx_sat.jpg / xxxx_mask.png folders), or
    # the set's own classes (names in index order), palette (one [R, G, B] per class; default
    # the Pascal VOC colour map), ignore index and mask format (auto | rgb | index).
    # classification: classes names the labels 0..K-1 of flat {label}_{id} folders, or must
    # equal a class-folder tree's sorted folder names; null = the classes the data holds
    spec: str | None = None
    classes: list[str] | None = None
    palette: list[list[int]] | None = None
    ignore_index: int = 255
    mask_format: str = "auto"

    def located(self) -> DataConfig:
        """A copy with train and val set: as the recipe gives them, else the folders of the
        first of SPLIT_LAYOUTS found under root (the working folder without a root)."""
        if self.train is not None and self.val is not None:
            return self
        base = Path(self.root) if self.root is not None else Path(".")
        if not base.is_dir():
            raise VislabError(f"data.root: {base} is not a folder")
        for train, val in SPLIT_LAYOUTS:
            if (base / train).is_dir() and (base / val).is_dir():
                return dataclasses.replace(self, train=self.train or train, val=self.val or val)
        looked = ", ".join(f"{t}/+{v}/" for t, v in SPLIT_LAYOUTS)
        where = self.root if self.root is not None else f"the working folder {Path.cwd()}"
        raise VislabError(
            f"no training and validation folders in {where}: looked for {looked} "
            "(or set data.train and data.val)"
        )

    def resolve(self, sub: str | None) -> Path | None:
        """A folder or file of the data (train, val, val_labels) relative to the root;
        absolute paths stay as they are."""
        if sub is None:
            return None
        p = Path(sub)
        return p if p.is_absolute() or self.root is None else Path(self.root) / p


@dataclass
class ModelConfig:
    name: str = "model_a"
    num_classes: int | None = None  # null = the data's (data.classes, or the classes found)
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the model's builder
    # start from the weights of a vislab checkpoint of the same model (a second training
    # stage, e.g. a fine-tune with another loss); null = from kwargs (scratch or ImageNet)
    init: str | None = None
    # classification: a vislab checkpoint or export of a classifier of the same classes and
    # image size (a larger model, say) whose probabilities for each training image (the mean
    # of the image's and its mirror's, computed once before training and kept in the run
    # folder) the run also learns, with weight optim.distill_weight (knowledge distillation);
    # null = off
    teacher: str | None = None


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    # segmentation: cross-entropy weight per class, or "balanced" (from the train masks)
    class_weights: list[float] | str | None = None
    # segmentation: + this x the Lovasz-softmax loss (a surrogate of 1 - mIoU) on the main head
    lovasz_weight: float = 0.0
    # with model.teacher: the loss is (1 - w) x cross-entropy with the labels + w x T^2 x
    # cross-entropy of the student's softmax(logits / T) with the teacher's probabilities
    # softened alike (p^(1/T), renormalised; Hinton et al. 2015); T = 1: as they are
    distill_weight: float = 0.5
    distill_temperature: float = 1.0
    schedule: str = "constant"  # constant | cosine | onecycle


@dataclass
class TrainerConfig:
    epochs: int = 90
    # 32-true | bf16-mixed (the CPU, or GPUs that have bf16) | 16-mixed (fp16 with gradient
    # scaling, GPUs only)
    precision: str = "32-true"
    channels_last: bool = False
    # a moving average of the weights after every optimizer step, of decay min(ema, (1 + n) /
    # (10 + n)) after n steps; validation, checkpoints and exports use it; 0 = off
    ema: float = 0.0
    threads: int | None = None  # torch CPU threads; null = the cores that are free right now
    snapshots: list[int] | None = None  # epochs (1-based) to snapshot; null = first, middle, last
    progress_bar: bool = True  # shown on a terminal; logs get one line per epoch instead
    # experiment loggers besides metrics.csv, writing into RUN/logs/: csv (Lightning's, per
    # step), tensorboard, mlflow, wandb (train/loggers.py); one name alone is a list of one
    loggers: list[str] | str = field(default_factory=list)
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    # several GPUs: batch norm over the processes' batches together (torch's SyncBatchNorm,
    # GPUs only); off, each process normalises its own share of the batch
    sync_batchnorm: bool = False


@dataclass
class Config:
    task: str = "classification"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        if isinstance(self.trainer.loggers, str):
            self.trainer.loggers = [self.trainer.loggers]
        for key, task in TASK_ONLY.items():
            section, name = key.split(".")
            part = getattr(self, section)
            default = {f.name: f.default for f in dataclasses.fields(part)}[name]
            if getattr(part, name) != default and self.task != task:
                raise VislabError(
                    f"config key {key}: only for task {task} (a {self.task} run would ignore it)"
                )
        names = self.data.classes or []
        twice = next((c for i, c in enumerate(names) if c in names[:i]), None)
        if twice is not None or any(not c.strip() for c in names):
            what = f"{twice!r} is listed twice" if twice is not None else "a name is empty"
            raise VislabError(f"config key data.classes: {what} (one distinct name per class)")
        snaps = self.trainer.snapshots or []
        bad = [e for e in snaps if not 1 <= e <= self.trainer.epochs]
        if bad:
            raise VislabError(
                f"config key trainer.snapshots: {bad[0]} is not an epoch of the run "
                f"(1..{self.trainer.epochs})"
            )
        self._check_optim()
        for key in ("mixup", "cutmix"):
            alpha = getattr(self.data, key)
            if not alpha >= 0 or (alpha and self.task != "classification"):
                raise VislabError(
                    f"config key data.{key}: {alpha} must be >= 0, and is only for task "
                    "classification"
                )
        defaults = OptimConfig()
        for key in ("distill_weight", "distill_temperature"):
            if self.model.teacher is None and getattr(self.optim, key) != getattr(defaults, key):
                raise VislabError(f"config key optim.{key}: only with model.teacher")
        if self.optim.distill_temperature == 0:
            raise VislabError(
                "config key optim.distill_temperature: 0.0 must be above 0 (the logits are "
                "divided by it)"
            )
        lw = self.optim.lovasz_weight
        if not lw >= 0 or (lw and self.task != "segmentation"):  # not >= 0: NaN too
            raise VislabError(
                f"config key optim.lovasz_weight: {lw} must be >= 0, and is only for task "
                "segmentation"
            )
        w = self.optim.class_weights
        if w is None:
            return
        if self.task != "segmentation":
            raise VislabError("config key optim.class_weights: only for task segmentation")
        if isinstance(w, str):
            if w != "balanced":
                raise VislabError(
                    f"config key optim.class_weights: {w!r} is not a list of weights or balanced"
                )
        else:
            check_class_weights(w, self.declared_num_classes())

    def _check_optim(self) -> None:
        """optim.momentum and optim.nesterov: refused where the optimiser or the schedule would
        leave them unused; and label smoothing at most 1."""
        o = self.optim
        if o.name != "sgd" and (o.nesterov or o.momentum != OptimConfig.momentum):
            key, value = ("nesterov", "true") if o.nesterov else ("momentum", o.momentum)
            raise VislabError(
                f"config key optim.{key}: {value} is SGD's; {o.name} would ignore it (AdamW "
                f"keeps its own betas): leave it out, or set optim.{key} back"
            )
        if o.name == "sgd" and o.schedule == "onecycle" and o.momentum != OptimConfig.momentum:
            raise VislabError(
                f"config key optim.momentum: {o.momentum} would go unused: the one-cycle "
                "schedule sets SGD's momentum itself, from 0.95 down to 0.85 as the rate rises "
                "and back as it falls (torch's OneCycleLR): leave it out"
            )
        if o.name == "sgd" and o.nesterov and o.momentum == 0:
            raise VislabError("config key optim.nesterov: Nesterov needs optim.momentum above 0")
        if self.optim.label_smoothing > 1:
            raise VislabError(
                f"config key optim.label_smoothing: {self.optim.label_smoothing} must be <= 1"
            )

    def declared_num_classes(self) -> int | None:
        """The number of classes the recipe itself fixes (model.num_classes, data.classes or
        data.spec), or None when only the data will tell."""
        if self.model.num_classes is not None:
            return self.model.num_classes
        if self.data.classes is not None:
            return len(self.data.classes)
        if self.data.spec is not None:
            from vislab.data.spec import builtin_spec

            return builtin_spec(self.data.spec).num_classes
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_class_weights(w: list[float], k: int | None) -> None:
    """optim.class_weights: one weight per class (when k, the number of classes, is known),
    none negative, not all 0."""
    if (k is not None and len(w) != k) or min(w) < 0 or not any(w):
        expected = f"expected {k} weights (one per class), " if k is not None else ""
        raise VislabError(
            f"config key optim.class_weights: {expected}none negative, not all 0; got {w}"
        )


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse 'a.b.c=value' (value read as YAML) into (['a','b','c'], value)."""
    shown = repr(text if len(text) <= 80 else text[:77] + "...")
    if "=" not in text:
        raise VislabError(f"override {shown} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise VislabError(f"override {shown} has an empty key")
    try:
        value = parse_yaml(raw) if raw != "" else None
    except RefusedYAML as e:
        raise VislabError(f"override {shown}: {e}") from None
    except yaml.YAMLError as e:
        raise VislabError(
            f"override {shown}: not valid YAML ({' '.join(str(e).split())})"
        ) from None
    return key.strip().split("."), value


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise VislabError(f"override {'.'.join(path)}: {part} is not a mapping")
    node[path[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML recipe (or the defaults when path is None) and apply key=value overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        require_file(path, "config file")
        tree = read_yaml_mapping(path, empty_ok=True)
    for text in overrides:
        keys, value = parse_override(text)
        _set(tree, keys, value)
    cfg = _checked(build(Config, tree))
    d = cfg.data
    paths = [d.train, d.val] + ([d.val_labels] if d.val_labels is not None else [])
    if d.root is not None and all(p is not None and Path(p).is_absolute() for p in paths):
        raise VislabError(
            f"config key data.root: {d.root} would go unused: data.train and data.val "
            f"({d.train}, {d.val}) are absolute paths, read as they are; leave data.root "
            "(--data) out, or give them relative to it"
        )
    return cfg


def config_from_dict(tree: dict[str, Any]) -> Config:
    """A stored config (a run's config.yaml): checked as a recipe is, but for what only a
    recipe is refused (load_config's checks), so that a run stays readable."""
    return _checked(build(Config, tree))


def _checked(cfg: Config) -> Config:
    """The checks across keys: a recorded key is used or refused, never ignored."""
    from vislab.infer.meta import normalisation_problem

    d = cfg.data
    if (d.mean is None) != (d.std is None):
        given = "data.mean" if d.mean is not None else "data.std"
        raise VislabError(
            f"config key {given} is used only with the other of data.mean and data.std: give "
            "both, or neither (the weights' own statistics, else the train set's)"
        )
    if d.mean is not None:
        problem = normalisation_problem(d.mean, d.std)
        if problem:
            raise VislabError(f"config key data.{problem}")
    return cfg
