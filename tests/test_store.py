"""data.store: decoded sets in memory or memory-mapped from a cache on disk, built once, reused,
rebuilt when a file changes, and training on either gives the same run bit for bit."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from conftest import seg_train_args, train_args
from PIL import Image

import vislab.data.images as images_module
import vislab.data.store as store
from vislab.cli import main
from vislab.data.images import load_labeled
from vislab.data.synthetic import write_p1_layout
from vislab.data.tiles import load_tiles
from vislab.errors import VislabError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("VISLAB_CACHE", str(root))
    return root / "decoded"


def _entries(cache) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.is_dir()) if cache.is_dir() else []


def test_a_disk_set_is_built_once_and_then_only_mapped(p1_tiny, cache, monkeypatch):
    folder = p1_tiny / "train_50"
    memory = load_labeled(folder, store="memory")
    disk = load_labeled(folder, store="disk")
    assert isinstance(disk.images, np.memmap) and not isinstance(memory.images, np.memmap)
    assert np.array_equal(disk.images, memory.images)
    assert np.array_equal(disk.labels, memory.labels) and disk.names == memory.names
    (entry,) = _entries(cache)
    info = json.loads((cache / entry / "complete.json").read_text())
    assert info["items"] == len(memory.names) and info["arrays"] == ["images"]

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images_module, "read_rgb", no_decoding)
    again = load_labeled(folder, store="disk")  # mapped, nothing decoded
    assert np.array_equal(again.images, memory.images) and _entries(cache) == [entry]


def test_a_changed_file_makes_a_new_entry(tmp_path, cache):
    data = write_p1_layout(tmp_path / "d", num_classes=2, per_class=3)
    folder = data / "train_50"
    first = load_labeled(folder, store="disk")
    victim = sorted(folder.iterdir())[0]
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(victim)
    os.utime(victim, ns=(1, 1))  # a new time as well, whatever the clock's resolution
    second = load_labeled(folder, store="disk")
    assert len(_entries(cache)) == 2
    i = second.names.index(victim.name)
    assert (second.images[i] == 7).all() and not (first.images[i] == 7).all()
    assert np.array_equal(np.delete(second.images, i, 0), np.delete(first.images, i, 0))


def test_an_interrupted_build_leaves_nothing_read_later(tmp_path, cache, monkeypatch):
    data = write_p1_layout(tmp_path / "d", num_classes=2, per_class=40)  # past one chunk
    folder = data / "train_50"
    read_rgb = images_module.read_rgb
    calls = []

    def dies_late(path, size=None):
        calls.append(path)
        if len(calls) == 70:
            raise KeyboardInterrupt
        return read_rgb(path, size)

    monkeypatch.setattr(images_module, "read_rgb", dies_late)
    with pytest.raises(KeyboardInterrupt):
        load_labeled(folder, store="disk")
    assert _entries(cache) == []  # no entry, no scratch folder
    assert [p.name for p in cache.iterdir()] == [p.name for p in cache.glob("*.lock")]
    monkeypatch.setattr(images_module, "read_rgb", read_rgb)
    assert np.array_equal(load_labeled(folder, store="disk").images, load_labeled(folder).images)


def test_tiles_on_disk_equal_tiles_in_memory(p2_tiny, cache):
    folder = p2_tiny / "train"
    memory, disk = load_tiles(folder, size=32), load_tiles(folder, size=32, store="disk")
    assert isinstance(disk.masks, np.memmap) and disk.ids == memory.ids
    assert np.array_equal(disk.images, memory.images) and np.array_equal(disk.masks, memory.masks)
    load_tiles(folder, size=48, store="disk")  # another size: another entry
    assert len(_entries(cache)) == 2


def test_auto_takes_the_disk_when_the_set_would_not_fit(p1_tiny, cache, monkeypatch):
    folder = p1_tiny / "train_50"
    assert not isinstance(load_labeled(folder, store="auto").images, np.memmap)
    n = load_labeled(folder).images.nbytes
    monkeypatch.setattr(store, "available_memory", lambda: 2 * n + 2)  # fits one copy
    assert not isinstance(load_labeled(folder, store="auto").images, np.memmap)
    assert isinstance(load_labeled(folder, store="auto", processes=2).images, np.memmap)


def test_a_disk_too_small_is_one_line(p1_tiny, cache, monkeypatch):
    monkeypatch.setattr(store.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(VislabError, match=r"needs 0.00 GiB and .* has 0.00 GiB free \(set VISLAB_"):
        load_labeled(p1_tiny / "train_50", store="disk")
    assert _entries(cache) == []


def _weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_training_from_the_disk_equals_training_from_memory(
    task, p1_tiny, p2_tiny, tmp_path, cache
):
    runs = {}
    for where in ("memory", "disk"):
        out = tmp_path / where
        if task == "classification":
            args = train_args(p1_tiny, out, 2, "--set", f"data.store={where}")
        else:
            args = seg_train_args(p2_tiny, out, 2, "--set", f"data.store={where}")
        assert main(args) == 0
        with (out / "metrics.csv").open(newline="") as f:
            rows = [{k: v for k, v in r.items() if not k.endswith("_s")} for r in csv.DictReader(f)]
        runs[where] = rows, _weights(out)
    assert len(_entries(cache)) == 2  # train and val, decoded once each
    (rows_m, w_m), (rows_d, w_d) = runs["memory"], runs["disk"]
    assert [{k: v for k, v in r.items() if k != "train_img_per_s"} for r in rows_m] == [
        {k: v for k, v in r.items() if k != "train_img_per_s"} for r in rows_d
    ]
    assert w_m.keys() == w_d.keys() and all(torch.equal(w_m[k], w_d[k]) for k in w_m)


def test_a_damaged_entry_is_rebuilt_and_an_unusable_cache_is_one_line(
    p1_tiny, cache, capsys, monkeypatch
):
    folder = p1_tiny / "train_50"
    whole = load_labeled(folder).images
    load_labeled(folder, store="disk")
    (entry,) = _entries(cache)
    npy = cache / entry / "images.npy"
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])  # cut short (a full disk)
    again = load_labeled(folder, store="disk")
    assert np.array_equal(again.images, whole)
    assert f"rebuilding the damaged cache entry {cache / entry}" in capsys.readouterr().err
    blocker = cache.parent.parent / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("VISLAB_CACHE", str(blocker))
    with pytest.raises(VislabError, match="cannot write the cache in .*set VISLAB_CACHE"):
        load_labeled(folder, store="disk")


def test_each_of_two_ranks_reads_its_own_half_of_the_cached_set(p1_tiny, cache):
    """The loader of each DDP rank fetches only its share of the memory-mapped set: the two
    ranks' indices are disjoint and together one epoch of the one-process order."""
    from types import SimpleNamespace

    from vislab.config import load_config
    from vislab.train.classification import ClassificationData

    cfg = load_config(None, [f"data.root={p1_tiny}", "data.store=disk", "data.batch_size=4"])
    read: dict[int, list[int]] = {}
    for rank in (0, 1):
        data = ClassificationData(cfg)  # each rank maps the cache the first one built
        fetch = data.train_set.__getitems__

        def counted(indices, rank=rank, fetch=fetch):
            read.setdefault(rank, []).extend(indices)
            return fetch(indices)

        data.train_set.__getitems__ = counted
        data.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        for _ in data.train_dataloader():
            pass
    assert len(_entries(cache)) == 2  # train and val, built once for both ranks
    n = len(data.train_set)
    assert len(read[0]) == len(read[1]) == n // 2
    assert not set(read[0]) & set(read[1]) and set(read[0]) | set(read[1]) == set(range(n))
