"""Folders in the course layout: download the real one, write the demo one, find them.

`vislab data download DIR` leaves DIR/p1_data/{train_50,val_50,val_gt.csv} and
DIR/p2_data/{train,validation}, the layout every other command and recipe expects.
"""

from __future__ import annotations

import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from vislab.errors import VislabError
from vislab.fileio import exclusive, require_file, scratch_path, special_file
from vislab.steps import Steps

MIB = 1 << 20  # the download is read and counted in these

# The Google Drive file id of hw1_data.zip in the course's own get_dataset.sh (DLCV Fall 2022
# HW1, `gdown <id> -O hw1_data.zip`), the release that ../shared/data holds. This machine has
# no network, so the id is as published, not fetched here. drive.usercontent with confirm=t
# skips Drive's "cannot scan this file for viruses" page, as gdown does.
DRIVE_ID = "1LMIaOY8NSKWmGtbvTsjXcHVaYKnNN_9u"
DEFAULT_URL = (
    f"https://drive.usercontent.google.com/download?id={DRIVE_ID}&export=download&confirm=t"
)

# folder names, in order of preference: the course's, ../shared/data's, an unzipped hw1_data/
LAYOUTS = {
    "p1": ("p1_data", "dlcv-p1", "hw1_data/p1_data"),
    "p2": ("p2_data", "dlcv-p2", "hw1_data/p2_data"),
}


def locate(root: Path) -> dict[str, Path]:
    """The problem folders found under root: {"p1": ..., "p2": ...}, either may be absent."""
    root = Path(root)
    found = {}
    for problem, names in LAYOUTS.items():
        for name in names:
            if (root / name).is_dir():
                found[problem] = root / name
                break
    return found


def check_layout(problem: str, folder: Path) -> str:
    """A one-line summary of a p1_data or p2_data folder; a VislabError naming what is missing."""
    if problem == "p1":
        parts = {"train_50": "*.png", "val_50": "*.png"}
    else:
        parts = {"train": "*_sat.jpg", "validation": "*_sat.jpg"}
    counts = []
    for sub, pattern in parts.items():
        n = sum(1 for _ in (folder / sub).glob(pattern)) if (folder / sub).is_dir() else 0
        if n == 0:
            raise VislabError(f"{folder / sub} is missing or holds no {pattern} files")
        counts.append(f"{sub}/ {n}")
    if problem == "p1" and not (folder / "val_gt.csv").is_file():
        raise VislabError(f"{folder / 'val_gt.csv'} is missing")
    return f"{folder}: " + ", ".join(counts)


def download(dest: Path, url: str | None = None, zip_path: Path | None = None) -> list[str]:
    """Fetch (or take) hw1_data.zip and unpack it to dest/p1_data and dest/p2_data.

    Returns one summary line per problem. Nothing is left in dest on failure."""
    dest = Path(dest)
    if zip_path is not None:  # a FIFO or a device is named, never opened (it would block)
        require_file(Path(zip_path), "zip file")
    _refuse_existing(dest)
    made = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive(dest, "DIR"):  # a second download into dest is refused at once
            _refuse_existing(dest)  # one that ended between the check above and the lock
            part = scratch_path(dest / "hw1_data.zip", "partial")
            try:
                shown = zip_path  # what messages call the zip: the file, or the address
                if zip_path is None:
                    shown = url or DEFAULT_URL
                    _fetch(shown, part)
                    zip_path = part
                _unpack(Path(zip_path), dest, shown)
            finally:
                part.unlink(missing_ok=True)
    except BaseException:
        if made and not any(dest.iterdir()):  # a failed download leaves no folder behind
            dest.rmdir()
        raise
    return [check_layout(p, dest / LAYOUTS[p][0]) for p in LAYOUTS]


DEMO_OWN = "own_segmentation"  # the demo's data set that is not the course's


def write_demo(dest: Path) -> str:
    """The demo's data: the course's layout (scikit-learn's digits as dest/p1_data, generated
    land-cover tiles as dest/p2_data) and a set of its own (dest/own_segmentation: 3 classes,
    images/ + masks/, palette-mode index masks with ignored pixels). Returns a summary."""
    from vislab.data.digits import write_digits_layout
    from vislab.data.synthetic import write_p2_layout, write_scene_layout

    dest = Path(dest)
    _refuse_existing(dest)
    if (dest / DEMO_OWN).exists():
        raise VislabError(f"{dest / DEMO_OWN} already exists; remove it or pick another folder")
    write_digits_layout(dest / "p1_data")
    write_p2_layout(dest / "p2_data", n_train=96, n_val=8, size=64)
    write_scene_layout(dest / DEMO_OWN, n_train=48, n_val=8, size=64)
    return (
        f"wrote {dest}/p1_data (scikit-learn's digits at 32x32, 10 classes), "
        f"{dest}/p2_data (96 + 8 generated 64x64 land-cover tiles) and {dest}/{DEMO_OWN} "
        "(48 + 8 generated 64x64 tiles of background, road and building)"
    )


def _refuse_existing(dest: Path) -> None:
    for names in LAYOUTS.values():
        if (dest / names[0]).exists():
            raise VislabError(f"{dest / names[0]} already exists; remove it or pick another folder")


UNPACK_MARGIN = 1 << 30  # free space left after unpacking, for the run folders to come


def _fetch(url: str, out: Path) -> None:
    hint = "download hw1_data.zip by other means and run: vislab data download DIR --zip FILE"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "file"):
        raise VislabError(f"--url {url}: give an http:// or https:// address")
    if parts.scheme == "file":
        special = special_file(Path(urllib.request.url2pathname(parts.path)))
        if special:
            raise VislabError(f"--url {url} is {special}, not a zip file")
    try:
        response = urllib.request.urlopen(url, timeout=30)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise VislabError(f"cannot download {url} ({reason}); no network? {hint}") from None
    with response:
        if "text/html" in (response.headers.get("Content-Type") or ""):
            raise VislabError(
                f"{url} answered with a web page, not the zip (Drive quota or sign-in); {hint}"
            )
        size = int(response.headers.get("Content-Length") or 0)
        room = shutil.disk_usage(out.parent).free - UNPACK_MARGIN  # the zip, and unpacked
        if size > room:
            raise VislabError(
                f"{url} is {size / 1e9:.1f} GB and {out.parent} has "
                f"{(room + UNPACK_MARGIN) / 1e9:.1f} GB free: make room, or download elsewhere"
            )
        steps = Steps(-(-size // MIB) or None, "hw1_data.zip", "MiB")  # None: size unknown
        try:
            with open(out, "wb") as f:
                while chunk := response.read(MIB):
                    f.write(chunk)
                    steps.step()
                    if f.tell() > room:  # a server that sends more than it announced
                        raise VislabError(
                            f"{url} sent over {f.tell() / 1e9:.1f} GB, more than {out.parent} "
                            "has room for; stopped"
                        )
        except OSError as e:
            raise VislabError(f"download of {url} broke off ({e}); {hint}") from None
        finally:
            steps.close()
    print(f"downloaded {out.stat().st_size / 1e6:.1f} MB", file=sys.stderr)


# the compression methods Python's zipfile unpacks (Deflate64, PPMd and the rest it cannot)
UNPACKED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _check_members(z: zipfile.ZipFile, shown: Path | str) -> None:
    """Refuse, before anything is written, a member that zipfile cannot unpack: encrypted, or
    compressed by a method other than stored, deflate, bzip2 and LZMA."""
    for info in z.infolist():
        if info.flag_bits & 0x1:
            raise VislabError(
                f"{shown}: member {info.filename} is encrypted (password-protected); vislab "
                "unpacks zips without passwords: unpack it yourself and zip it again without one"
            )
        if info.compress_type not in UNPACKED_METHODS:
            method = zipfile.compressor_names.get(info.compress_type, "unknown")
            raise VislabError(
                f"{shown}: member {info.filename} is compressed with method "
                f"{info.compress_type} ({method}), which Python's zipfile cannot unpack; zip it "
                "again with plain deflate (zip -r), or unpack it yourself"
            )


def _unpack(zip_path: Path, dest: Path, shown: Path | str) -> None:
    """Extract into a scratch folder, then move p1_data and p2_data into dest (messages name
    the zip as shown: its file, or the address it came from)."""
    if not zipfile.is_zipfile(zip_path):
        raise VislabError(f"{shown} is not a zip file")
    scratch = scratch_path(dest / "hw1_data", "partial")
    try:
        with zipfile.ZipFile(zip_path) as z:
            for name in z.namelist():
                p = PurePosixPath(name)
                if p.is_absolute() or ".." in p.parts:
                    raise VislabError(f"{shown} holds an unsafe path: {name}")
            # the sizes it declares bound what it unpacks to (zipfile stops each member
            # there); a few MB can declare terabytes, so they are checked before any is written
            size, free = sum(i.file_size for i in z.infolist()), shutil.disk_usage(dest).free
            if size > free - UNPACK_MARGIN:
                raise VislabError(
                    f"{shown} unpacks to {size / 1e9:.1f} GB and {dest} has "
                    f"{free / 1e9:.1f} GB free: make room, or unpack it elsewhere"
                )
            _check_members(z, shown)
            try:
                z.extractall(scratch)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as e:
                raise VislabError(f"cannot unpack {shown}: {e}") from None
        # the course's zip holds hw1_data/p1_data; other copies may nest one level deeper
        candidates = [scratch, *sorted(p for p in scratch.iterdir() if p.is_dir())]
        found = next((f for f in map(locate, candidates) if set(f) == set(LAYOUTS)), None)
        if found is None:
            raise VislabError(f"{shown} holds no p1_data/ and p2_data/ folders")
        for problem, folder in found.items():
            check_layout(problem, folder)
        for problem, folder in found.items():
            folder.rename(dest / LAYOUTS[problem][0])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
