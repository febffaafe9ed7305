"""Ensemble recipes: several runs trained one after the other whose models then predict
together (`vislab predict`, the mean of their class probabilities).

An ensemble recipe is a YAML file with one key, ``ensemble``, a list of members:

    ensemble:
      - name: 320px_seed2            # the member's run folder: OUT/320px_seed2
        config: p2_lite.yaml         # a recipe, relative to this file's folder
        set: [seed=2, data.image_size=320]   # its overrides, as `--set` takes them
      - name: 256px_seed3
        config: p2_lite.yaml
        set: [seed=3]

`vislab train ENSEMBLE.yaml --out OUT` trains each member into OUT/<name> (a run folder as any
other), writes OUT/ensemble.json, which names the members, and ends with the ensemble's score
on the (first member's) validation set: OUT/val_pred.csv or OUT/val_masks/, and OUT/val_eval/,
as `vislab reproduce` scores a run. `vislab predict --ckpt OUT` predicts with the members'
best.ckpt. No torch here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vislab.config import Config, load_config
from vislab.errors import VislabError
from vislab.fileio import atomic_write_bytes, require_file
from vislab.run_folder import RunFolder
from vislab.yamlfile import read_yaml_mapping

KEY = "ensemble"
MEMBER_KEYS = {"name", "config", "set"}
FOLDER_FILE = "ensemble.json"  # in OUT: the members' names, in order
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Member:
    name: str  # its run folder's name under the ensemble's folder
    config: Path  # its recipe
    overrides: tuple[str, ...] = ()


def is_ensemble(path: str | Path) -> bool:
    """Whether the recipe at path is an ensemble recipe (its top-level key is ``ensemble``)."""
    path = Path(path)
    return path.is_file() and KEY in read_yaml_mapping(path, empty_ok=True)


def read_members(path: str | Path) -> list[Member]:
    """The members of the ensemble recipe at path; a one-line error naming the file and the
    member for anything that is not one."""
    path = Path(path)
    require_file(path, "ensemble recipe")
    tree = read_yaml_mapping(path)
    others = sorted(str(k) for k in tree if k != KEY)
    if others:
        raise VislabError(
            f"{path}: an ensemble recipe holds only the key {KEY!r}, not {', '.join(others)} "
            "(each member's settings go in its own recipe or its 'set' list)"
        )
    given = tree[KEY]
    if not isinstance(given, list) or len(given) < 2:
        raise VislabError(f"{path}: {KEY} must list two or more members")
    members, names = [], set()
    for i, entry in enumerate(given, 1):
        members.append(_member(path, i, entry))
        if members[-1].name in names:
            raise VislabError(f"{path}: member {i}: the name {members[-1].name!r} is given twice")
        names.add(members[-1].name)
    return members


def _member(path: Path, i: int, entry: Any) -> Member:
    where = f"{path}: member {i}"
    if not isinstance(entry, dict):
        raise VislabError(f"{where}: a mapping with the keys name, config and set (optional)")
    unknown = sorted(str(k) for k in entry if k not in MEMBER_KEYS)
    if unknown:
        raise VislabError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a member takes name, config and set"
        )
    name, config, sets = entry.get("name"), entry.get("config"), entry.get("set", [])
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise VislabError(
            f"{where}: name {name!r} must be a folder name of letters, digits, '_', '.' and '-'"
        )
    if not isinstance(config, str) or not config:
        raise VislabError(f"{where} ({name}): config must be the path of a recipe")
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        raise VislabError(f"{where} ({name}): set must be a list of key=value overrides")
    recipe = path.parent / config
    if is_ensemble(recipe):
        raise VislabError(f"{where} ({name}): {recipe} is an ensemble recipe; give a run's recipe")
    return Member(name, recipe, tuple(sets))


def member_configs(path: str | Path, overrides: list[str] = ()) -> list[tuple[Member, Config]]:
    """Each member with its config: its recipe, its own overrides, then overrides (the
    command's, for every member). All are read before any trains, so that a mistake in the
    last member stops the ensemble before hours of training, not after."""
    found = []
    for m in read_members(path):
        try:
            cfg = load_config(m.config, [*m.overrides, *overrides])
        except VislabError as e:
            raise VislabError(f"{path}: member {m.name}: {e}") from None
        found.append((m, cfg))
    tasks = {cfg.task for _, cfg in found}
    if len(tasks) > 1:
        shown = ", ".join(f"{m.name} {cfg.task}" for m, cfg in found)
        raise VislabError(f"{path}: the members of an ensemble share one task ({shown})")
    return found


def write_folder_file(out: Path, members: list[Member], recipe: Path) -> None:
    """OUT/ensemble.json: what makes OUT an ensemble's folder for `vislab predict --ckpt`."""
    text = json.dumps({"recipe": str(recipe), "members": [m.name for m in members]}, indent=1)
    atomic_write_bytes(Path(out) / FOLDER_FILE, (text + "\n").encode())


def folder_members(out: Path) -> list[str] | None:
    """The members' names an ensemble's folder records, or None when out is no such folder."""
    file = Path(out) / FOLDER_FILE
    if not file.is_file():
        return None
    try:
        names = json.loads(file.read_text())["members"]
    except (ValueError, KeyError, TypeError) as e:
        raise VislabError(f"{file}: not an ensemble's record ({e})") from None
    if not isinstance(names, list) or not all(
        isinstance(n, str) and _NAME.fullmatch(n) for n in names
    ):
        raise VislabError(f"{file}: its members are not a list of folder names")
    return names


def checkpoints(ckpts: list[Path], option: str = "--ckpt") -> list[Path]:
    """Checkpoints as `vislab predict --ckpt` (or `vislab submission --p1`, option) takes
    them: a folder of an ensemble stands for its members' best.ckpt, in order; anything else
    stays as it is."""
    found = []
    for c in ckpts:
        names = folder_members(c) if Path(c).is_dir() else None
        if names is None:
            found.append(c)
            continue
        for name in names:
            best = RunFolder(Path(c) / name).best
            if not best.is_file():
                raise VislabError(
                    f"{option} {c}: its member {name} has no checkpoint yet ({best}); train the "
                    f"ensemble on with `vislab train RECIPE --out {c} --resume`"
                )
            found.append(best)
    return found


def train_members(recipe: Path, overrides: list[str], out: Path, resume: bool) -> None:
    """`vislab train ENSEMBLE.yaml`: each member into out/<name>, one after the other. With
    resume, members that finished are kept, the one that stopped goes on from its last.ckpt
    and the rest start."""
    from vislab.models.fetch import prepare
    from vislab.train.run import train

    found = member_configs(recipe, overrides)
    names = [m.name for m, _ in found]
    for m, cfg in found:  # each member's data and weights, before the first trains
        try:
            cfg.data.located()
            prepare(cfg.model.name, dict(cfg.model.kwargs))
        except VislabError as e:
            raise VislabError(f"{recipe}: member {m.name}: {e}") from None
    out = Path(out)
    if RunFolder(out).exists():
        raise VislabError(f"--out {out} holds a run; an ensemble needs a folder of its own")
    recorded = folder_members(out) if out.is_dir() else None
    if recorded is not None and recorded != names:
        raise VislabError(
            f"--out {out} holds the ensemble of {', '.join(recorded)}, the recipe names "
            f"{', '.join(names)} (to start over, pick another --out)"
        )
    runs = [RunFolder(out / name) for name in names]
    if not resume and any(r.exists() or r.checkpoints.exists() for r in runs):
        raise VislabError(
            f"{out} already holds runs of this ensemble; pass --resume to continue it or --out "
            "for a new one"
        )
    if resume and recorded is None:
        raise VislabError(f"--resume: {out} holds no ensemble (no {FOLDER_FILE})")
    out.mkdir(parents=True, exist_ok=True)
    write_folder_file(out, [m for m, _ in found], Path(recipe).resolve())
    for i, ((m, cfg), run) in enumerate(zip(found, runs, strict=True), 1):
        print(f"ensemble member {i}/{len(found)}: {m.name} -> {run.path}", flush=True)
        train(cfg, run.path, resume=resume and run.exists())
    print(f"ensemble of {len(found)}: scoring the validation set", flush=True)
    score(out, found)


def score(out: Path, found: list[tuple[Member, Config]]) -> None:
    """The ensemble of out's trained members scored on the first member's validation set:
    out/val_pred.csv or out/val_masks/, and out/val_eval/, as `vislab reproduce` scores a run."""
    from vislab.infer.validation import score_validation

    best = [RunFolder(Path(out) / m.name).best for m, _ in found]
    score_validation(best, found[0][1], RunFolder(out), label="ensemble: ")
