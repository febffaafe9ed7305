"""The course's verbs (`vislab submission`, `vislab data`, `vislab reproduce`): their arguments,
declared as cli/parser.py declares the others', and their functions, called as cli/verbs.py's
are."""

from __future__ import annotations

import argparse
from pathlib import Path

from vislab.errors import VislabError
from vislab.fileio import refuse_writing_over_inputs


def declare_submission(p: argparse.ArgumentParser) -> None:
    for problem, model in (("1", "classifier"), ("2", "segmenter")):
        p.add_argument(
            f"--p{problem}",
            type=Path,
            nargs="+",
            action="extend",
            help=f"problem {problem}: a {model}'s checkpoint (or .safetensors); several, or an "
            "ensemble's folder, predict as an ensemble (as vislab predict --ckpt A B)",
        )
    p.add_argument("--out", required=True, type=Path, help="the folder, written afresh")
    for problem in ("1", "2"):
        p.add_argument(
            f"--p{problem}-url",
            nargs="+",
            action="extend",
            help=f"where you will upload p{problem}_model.npz (an ensemble's: one address per "
            "model, in order): hw1_download.sh then fetches it with wget (needed when it is "
            "over GitHub's 50 MB)",
        )


def declare_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["download", "demo"],
        help="download: the course's hw1_data zip, unpacked to DIR/p1_data and DIR/p2_data; "
        "demo: scikit-learn's digits and generated land-cover tiles in that layout",
    )
    p.add_argument("dir", type=Path, help="folder to fill (p1_data/ and p2_data/ must not exist)")
    p.add_argument("--url", help="download: another address of hw1_data.zip")
    p.add_argument(
        "--zip",
        dest="zip_file",
        metavar="ZIP",
        type=Path,
        help="download: unpack this local hw1_data.zip instead",
    )


def declare_reproduce(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data",
        type=Path,
        help="folder holding p1_data/ and p2_data/ (or dlcv-p1/ and dlcv-p2/)",
    )
    p.add_argument(
        "--profile",
        choices=["cpu", "paper", "demo"],
        default="cpu",
        help="cpu: Model A, the from-scratch stand-ins and the ensembles fine-tuned from "
        "ImageNet (configs/p1_ensemble.yaml, p2_ensemble.yaml), about 8 hours on 2 cores; "
        "paper: the report's exact settings, for a GPU; demo: the cpu profile's kinds of "
        "model and DeepLabv3 briefly, for `vislab data demo` data (default: cpu)",
    )
    p.add_argument("--out", type=Path, help="output folder (default: runs/reproduce-PROFILE)")
    p.add_argument(
        "--configs", type=Path, default=Path("configs"), help="recipe folder (default: configs)"
    )
    p.add_argument("--epochs", type=int, help="override every recipe's epochs (a dry run)")


def submission(
    *,
    p1: list[Path] | None,
    p2: list[Path] | None,
    out: Path,
    p1_url: list[str] | None,
    p2_url: list[str] | None,
) -> None:
    from vislab.course.submission.build import build_submission
    from vislab.ensembles import checkpoints

    p1, p2 = (checkpoints(c, f"--p{n}") if c else None for n, c in (("1", p1), ("2", p2)))
    refuse_writing_over_inputs([("--out", out)], [*(p1 or []), *(p2 or [])])
    parts = build_submission(out, p1=p1, p2=p2, p1_url=p1_url, p2_url=p2_url)
    for problem, part in parts.items():
        where = "fetched by hw1_download.sh" if part["download"] else "in the folder"
        print(f"problem {problem}: {part['model']}, weights {part['mb']:.1f} MB ({where})")
    print(f"wrote {out} (bash hw1_1.sh / hw1_2.sh IMG_DIR OUT; see its README.md)")


def data(*, action: str, dir: Path, url: str | None, zip_file: Path | None) -> None:
    from vislab.course.data import download, write_demo

    if action == "download":
        for line in download(dir, url=url, zip_path=zip_file):
            print(line)
    elif url or zip_file:
        raise VislabError("--url and --zip belong to `vislab data download`")
    else:
        print(write_demo(dir))


def reproduce(
    *, data: Path, profile: str, out: Path | None, configs: Path, epochs: int | None
) -> None:
    from vislab.course.reproduce import reproduce as reproduce_all

    out = out or Path("runs") / f"reproduce-{profile}"
    path = reproduce_all(data, profile, out, configs=configs, epochs=epochs)
    print(f"the report is {path}")
