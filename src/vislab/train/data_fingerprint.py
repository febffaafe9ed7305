"""The fingerprint of a run's data, which run.json records at the run's start and --resume
compares: the names and sizes of the files training reads, hashed, and packed whole (up to
LISTING_MAX files) to name what changed."""

from __future__ import annotations

import base64
import hashlib
import zlib
from pathlib import Path

from vislab.config import DataConfig

# run.json keeps the names and sizes of up to this many data files (packed: a few bytes a
# file), to name what changed when the data no longer matches; past it, only their count
LISTING_MAX = 200_000
# what the fingerprint covers: the files training reads (data_listing); runs whose run.json
# has no scope covered every file under the data root
SCOPE = "train+val"


def data_listing(data: DataConfig) -> list[tuple[str, int]]:
    """The (path, size) of each file training reads, sorted: the images (and masks) under
    the train and val folders and the val_labels CSV, paths under data.root relative to it.
    Other files under the root (a run folder inside it, a Thumbs.db, predictions written
    beside the images) are no part of the data."""
    from vislab.data.images import IMAGE_SUFFIXES

    data = data.located()
    root = Path(data.root) if data.root is not None else Path(".")
    files = []
    for sub in (data.train, data.val):
        folder = data.resolve(sub)
        files += [
            p
            for p in folder.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and p.is_file()
        ]
    if data.val_labels is not None:
        files.append(data.resolve(data.val_labels))
    return sorted({(_under(p, root), p.stat().st_size) for p in files})


def _under(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _root_listing(root: Path) -> list[tuple[str, int]]:
    """Every visible file under root: what run.json's fingerprint covered before it recorded
    its scope (read for those runs only)."""
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size)
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _listing_text(listing: list[tuple[str, int]]) -> str:
    return "".join(f"{name}\0{size}\n" for name, size in listing)


def fingerprint(listing: list[tuple[str, int]]) -> dict:
    """The fingerprint of the files of a listing: their count and the hash of their names and
    sizes."""
    digest = hashlib.sha256(_listing_text(listing).encode()).hexdigest()
    return {"files": len(listing), "sha256": digest}


def _unpacked(packed: object) -> dict[str, int] | None:
    """{path: size} of a listing new_identity packed; None when there is none or it is
    damaged (the change is then told by the count of files alone)."""
    try:
        text = zlib.decompress(base64.b64decode(packed, validate=True)).decode()
        lines = text.split("\n")[:-1]  # each ends in a newline; a name may hold other breaks
        return {name: int(size) for name, size in (line.split("\0") for line in lines)}
    except (TypeError, ValueError, zlib.error):
        return None


def _what_changed(recorded: dict, listing: list[tuple[str, int]]) -> str:
    """How the files of a listing differ from those of a recorded fingerprint: how many were
    added, removed and resized, with the first of each."""
    now = dict(listing)
    count = f"{len(now)} files now, {recorded.get('files')} when the run started"
    then = _unpacked(recorded.get("listing"))
    if then is None:
        return f"{count}; other names or sizes"
    added = sorted(now.keys() - then.keys())
    removed = sorted(then.keys() - now.keys())
    resized = sorted(k for k in now.keys() & then.keys() if now[k] != then[k])
    parts = [
        f"{len(names)} {what}, e.g. {names[0]}"
        for names, what in ((added, "added"), (removed, "removed"), (resized, "resized"))
        if names
    ]
    return "; ".join([*(parts or ["other names or sizes"]), count])


def data_change(recorded: dict, data: DataConfig) -> str | None:
    """What differs between the files of data and a run's recorded data fingerprint
    (RunFolder.identity()["data"]), or None when they are the same files."""
    if recorded.get("scope") == SCOPE:
        listing = data_listing(data)
    else:
        listing = _root_listing(Path(data.root))
    found = fingerprint(listing)
    if (found["files"], found["sha256"]) == (recorded.get("files"), recorded.get("sha256")):
        return None
    return _what_changed(recorded, listing)


def data_record(data: DataConfig) -> dict:
    """What run.json records of data: its fingerprint, its scope and (up to LISTING_MAX
    files) its listing, packed."""
    listing = data_listing(data)
    record = {**fingerprint(listing), "scope": SCOPE}
    if len(listing) <= LISTING_MAX:
        packed = zlib.compress(_listing_text(listing).encode(), 9)
        record["listing"] = base64.b64encode(packed).decode()
    return record
