import csv
import json
import re
import shutil

import numpy as np
import pytest
from conftest import seg_train_args, train_args
from PIL import Image

from vislab.cli import main
from vislab.course.landcover import CLASSES, LANDCOVER
from vislab.data.tiles import balanced_weights, load_tiles
from vislab.report.build import markdown_text as md_text


@pytest.fixture(scope="module")
def runs(p1_tiny, p2_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("report_runs")
    cls, seg = root / "cls", root / "seg"
    assert main(train_args(p1_tiny, cls, 3)) == 0
    assert main(["embed", str(cls)]) == 0
    assert main(seg_train_args(p2_tiny, seg, 2)) == 0
    for run, val in ((cls, p1_tiny / "val_50"), (seg, p2_tiny / "validation")):
        out = run / ("val_pred.csv" if run is cls else "val_masks")  # as reproduce writes them
        ckpt = run / "checkpoints" / "best.ckpt"
        assert main(["predict", "--ckpt", str(ckpt), "--images", str(val), "--out", str(out)]) == 0
    return cls, seg


def test_report_embeds_figures_and_reads_numbers_from_the_runs(runs, tmp_path):
    cls, seg = runs
    assert main(["progress", str(seg), "--tiles", "0000", "0001"]) == 0
    assert main(["report", str(cls), str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    # 2 curves, 2 per-class charts, 2 class-balance charts, PCA, t-SNE, progress, a
    # score-against-minutes figure per problem, the worst tiles, the confused images and the
    # sorted per-class accuracy, the five architectures drawn; and the explorer's image sprite
    assert html.count('<img src="data:image/png;base64,') == 19
    assert html.count("data:image/png;base64,") == 20
    with (cls / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    best = max(range(len(rows)), key=lambda i: float(rows[i]["val_acc"]))
    minutes = sum(float(r["epoch_s"]) for r in rows[: best + 1]) / 60
    assert f"{float(rows[best]['val_acc']):.4f}" in html
    assert f"reached: cls {float(rows[best]['val_acc']):.4f} after {minutes:.0f} min" in html
    assert "Missing:" not in html
    # the report's Model B runs are absent: shown as missing rows, never invented
    assert html.count("no run given") == 3  # resnext101, fcn32s, deeplabv3
    # the CPU segmenter is labelled as the stand-in it is, not as the report's Model B
    role = "CPU stand-in for Model B, from scratch (LR-ASPP MobileNetV3)"
    assert f"<td>lraspp_mobilenet_v3</td><td>{role}</td>" in html
    for name in (
        "model_a",
        "torchvision/resnext101_64x4d",
        "fcn32s_vgg16",
        "deeplabv3_resnet50",
        "lraspp_mobilenet_v3",
    ):
        assert f"<b>{name}</b>" in html  # every architecture has its layer table
        assert f'alt="architecture of {name}"><figcaption>{name}: ' in html  # and its drawing
    assert "model_a: 6 blocks (modules at depth 2" in html
    assert "deeplabv3_resnet50: 34 blocks" in html and "16 add two paths inside" in html
    md = (tmp_path / "rep" / "report.md").read_text()
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (tmp_path / "rep" / link).is_file()
    assert "## Problem 1" in md and "## Problem 2" in md


def test_missing_analysis_is_shown_as_missing_not_invented(runs, tmp_path):
    cls, seg = runs
    (seg / "progress.png").unlink(missing_ok=True)
    assert main(["report", str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Missing: mask progress figure" in html
    assert "No classification run was given" in html


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_two_runs_of_one_folder_name_keep_their_own_figures(runs, tmp_path):
    cls, _ = runs
    copies = []
    for parent in ("a", "b"):
        copy = tmp_path / parent / cls.name
        shutil.copytree(cls, copy)
        copies.append(copy)
    rows = (copies[1] / "metrics.csv").read_text().splitlines()
    # the second copy's curve differs: its last epoch's validation accuracy is halved
    head, last = rows[0].split(","), rows[-1].split(",")
    i = head.index("val_acc")
    last[i] = f"{float(last[i]) / 2:.6f}"
    (copies[1] / "metrics.csv").write_text("\n".join([*rows[:-1], ",".join(last)]) + "\n")
    out = tmp_path / "rep"
    assert main(["report", *map(str, copies), "--out", str(out)]) == 0
    curves = sorted(p.name for p in (out / "figures").glob("*_curves.png"))
    assert curves == [f"a-{cls.name}_curves.png", f"b-{cls.name}_curves.png"]
    a, b = ((out / "figures" / c).read_bytes() for c in curves)
    assert a != b
    html = (out / "report.html").read_text()
    assert f"a-{cls.name}" in html and f"b-{cls.name}" in html


def test_the_report_replaces_an_old_one_whole(runs, tmp_path, monkeypatch):
    cls, _ = runs
    out = tmp_path / "rep"
    assert main(["report", str(cls), "--out", str(out)]) == 0
    before = (out / "report.html").read_bytes()

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    import vislab.fileio

    monkeypatch.setattr(vislab.fileio.os, "replace", full_disk)
    assert main(["report", str(cls), "--out", str(out)]) == 2
    assert (out / "report.html").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_per_class_scores_over_training_come_from_the_runs(runs, tmp_path):
    cls, seg = runs
    assert main(["report", str(cls), str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Per-class accuracy over training" in html and "Per-class IoU over training" in html
    with (seg / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    ious = {c: float(rows[-1][f"val_iou_{c}"]) for c in ("urban", "agriculture", "rangeland")}
    ious |= {c: float(rows[-1][f"val_iou_{c}"]) for c in ("forest", "water", "barren")}
    weakest = min(ious, key=ious.get)
    assert f"The weakest class at the end is {weakest} ({ious[weakest]:.3f})" in html
    embed = json.loads((cls / "embed" / "metrics.json").read_text())
    last = embed["per_class_accuracy"][-1]
    assert len(embed["per_class_accuracy"]) == len(embed["tsne"])  # one per snapshot
    coords = np.load(cls / "embed" / "coords.npz")
    preds, labels = coords[f"pred_epoch_{last['epoch']}"], coords["labels"]
    for c, acc in last["accuracy"].items():
        assert acc == pytest.approx(float((preds[labels == int(c)] == int(c)).mean()))


def test_class_balance_is_what_training_counted(runs, p2_tiny, tmp_path):
    _, seg = runs
    counted = json.loads((seg / "class_balance.json").read_text())
    masks = load_tiles(p2_tiny / "train", size=32).masks  # the run's data.image_size
    assert counted["unit"] == "pixels"
    assert counted["train"] == np.bincount(masks.ravel(), minlength=7).tolist()
    assert main(["report", str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    weights = balanced_weights(counted["train"], LANDCOVER.scored)
    named = ", ".join(f"{c} {w:g}" for c, w in zip(CLASSES[:6], weights[:6], strict=True))
    assert f"optim.class_weights: balanced would weigh the loss {named}." in html
    train = [n / sum(counted["train"]) for n in counted["train"][:6]]
    smallest = min(range(6), key=train.__getitem__)
    assert f"Smallest class: {CLASSES[smallest]}, {train[smallest]:.1%} of the train pixels" in html


def _copy_run(run, dest):
    shutil.copytree(run, dest)
    return dest


def test_the_worst_tiles_and_the_confused_pixels_come_from_the_predicted_masks(
    runs, p2_tiny, tmp_path
):
    from vislab.course.landcover import read_mask, write_mask

    seg = _copy_run(runs[1], tmp_path / "seg")
    masks = seg / "val_masks"
    truths = {
        t: read_mask(p2_tiny / "validation" / f"{t}_mask.png")[0]
        for t in ("0000", "0001", "0002", "0003")
    }
    for tile, truth in truths.items():
        write_mask(truth, masks / f"{tile}.png")  # right everywhere...
    wrong = truths["0002"].copy()
    wrong[wrong != 4] = 4  # ...but 0002, predicted water all over
    write_mask(wrong, masks / "0002.png")
    assert main(["report", str(seg), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    counts = np.bincount(truths["0002"].ravel(), minlength=7)
    top = max((c for c in range(7) if c != 4), key=lambda c: (counts[c], -c))
    total = sum(np.bincount(t.ravel(), minlength=7)[top] for t in truths.values())
    share = f"{counts[top] / total:.1%} of {CLASSES[top]}"
    said = f"{CLASSES[top]} taken for water, {counts[top]:,} pixels ({share})"
    assert md_text(f"The most frequent mistakes over the validation pixels: {said}") in md
    # the tile's own mIoU: water's IoU, and 0 for every other class of its truth
    present = {c for c in range(6) if counts[c]} | {4}
    water = counts[4] / counts.sum() / len(present)
    assert (
        md_text(f"the worst are 0002 ({water:.3f}; mostly {CLASSES[top]} taken for water), 0000")
        in md
    )
    assert "![the worst validation tiles](figures/seg_worst_tiles.png)" in md
    assert (tmp_path / "rep" / "figures" / "seg_worst_tiles.png").stat().st_size > 10_000


def test_the_confused_classes_show_their_images_and_every_class_its_accuracy(
    runs, p1_tiny, tmp_path
):
    from vislab.report.failures import failures
    from vislab.report.run import read_run

    cls = _copy_run(runs[0], tmp_path / "cls")
    names = sorted(p.name for p in (p1_tiny / "val_50").glob("*.png"))  # 4 per class, 4 classes
    guess = {n: int(n.split("_")[0]) for n in names}
    for n in ("1_16.png", "1_17.png", "1_19.png"):
        guess[n] = 2
    guess["0_18.png"] = 3
    rows = "".join(f"{n},{guess[n]}\n" for n in names)
    (cls / "val_pred.csv").write_text("filename,label\n" + rows)
    found = failures(read_run(cls), tmp_path)
    pairs = found.facts["failures"]["pairs"]
    assert [(p["true"], p["pred"], p["count"], p["examples"]) for p in pairs] == [
        ("1", "2", 3, ["1_16.png", "1_17.png", "1_19.png"]),
        ("0", "3", 1, ["0_18.png"]),
    ]
    assert found.facts["failures"]["class_accuracy"] == {"0": 0.75, "1": 0.25, "2": 1.0, "3": 1.0}
    assert main(["report", str(cls), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert (
        md_text(
            "class 1 taken for class 2, 3 images (75.0% of class 1); "
            "class 0 taken for class 3, 1 image (25.0% of class 0)."
        )
        in md
    )
    assert (
        "Per-class accuracy spans 0.25 to 1.00 around the overall 0.7500: lowest class 1 0.25" in md
    )
    for figure in ("cls_confused.png", "cls_class_accuracy.png"):
        assert f"(figures/{figure})" in md


def test_failures_without_predictions_say_how_to_make_them(runs, tmp_path):
    cls = _copy_run(runs[0], tmp_path / "cls")
    (cls / "val_pred.csv").unlink()
    assert main(["report", str(cls), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    ckpt = cls / "checkpoints" / "best.ckpt"
    assert (
        "*Missing: "
        + md_text(
            f"where it fails (the run folder holds no val_pred.csv; `vislab predict --ckpt {ckpt}"
        )
        in md
    )
    assert "Where it fails" not in md


POPPLER = ("pdftotext", "pdfimages", "pdftoppm")


def _browser() -> str | None:
    from vislab.errors import VislabError
    from vislab.report.pdf import find_browser

    try:
        return find_browser()
    except VislabError:
        return None


@pytest.mark.skipif(
    _browser() is None or not all(map(shutil.which, POPPLER)),
    reason="needs a Chromium (apt-get install chromium) and poppler-utils (pdftotext, pdfimages, "
    "pdftoppm) on PATH",
)
def test_the_pdf_holds_every_figure_and_the_unfolded_tables(runs, tmp_path):
    import subprocess

    cls, seg = runs
    pdf = tmp_path / "hw1_r00000000.pdf"
    assert (
        main(["report", str(cls), str(seg), "--out", str(tmp_path / "rep"), "--pdf", str(pdf)]) == 0
    )
    html = (tmp_path / "rep" / "report.html").read_text()
    assert not list((tmp_path / "rep").glob(".*"))  # the print version is gone
    text = subprocess.run(["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True).stdout
    with (cls / "metrics.csv").open() as f:
        best = max(float(r["val_acc"]) for r in csv.DictReader(f))
    assert f"{best:.4f}" in text and "Where it fails" in text
    # the layer tables, folded on screen, are printed whole: the last layer of each
    tables = re.findall(r"<details>(.*?)</details>", html, re.S)
    assert len(tables) == 5  # the report's four models and the CPU segmenter
    for table in tables:
        last = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", table)[-1]
        assert re.search(rf"{re.escape(last[0])}\s+{re.escape(last[1])}", text), last
    listed = subprocess.run(["pdfimages", "-list", pdf], capture_output=True, text=True).stdout
    images = [line for line in listed.splitlines()[2:] if line.split()[2] == "image"]
    assert len(images) == len(set(re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)))
    subprocess.run(
        ["pdftoppm", "-r", "20", "-png", "-f", "1", "-l", "1", pdf, tmp_path / "page"], check=True
    )
    from PIL import Image

    page = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("L"))
    assert (page < 128).mean() > 0.005  # text and figures, not a blank page


def test_pdf_without_a_browser_is_a_one_line_error(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["report", str(runs[0]), "--out", str(tmp_path / "rep"), "--pdf"]) == 2
    err = capsys.readouterr().err
    assert (
        "--pdf prints the report with a headless Chromium" in err
        and "apt-get install chromium" in err
    )
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "rep").exists()


PROBE = """<script>
const root = document.querySelector(".explorer"), out = {};
const dots = root.querySelectorAll("circle"), tip = root.querySelector(".tip");
out.hiddenBefore = tip.hidden;
dots[5].dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
out.hiddenAfter = tip.hidden;
out.text = tip.querySelector(".txt").textContent;
out.position = tip.querySelector(".thumb").style.backgroundPosition;
out.view = root.querySelector("select").selectedOptions[0].textContent;
const button = root.querySelectorAll(".legend button")[CLASS];
button.click();
out.dimmed = root.querySelectorAll("circle.dim").length;
button.click();
out.dimmedAgain = root.querySelectorAll("circle.dim").length;
const before = [...dots].map(e => e.getAttribute("cx"));
const select = root.querySelector("select");
select.value = 0;
select.dispatchEvent(new Event("change"));
out.moved = [...dots].filter((e, i) => e.getAttribute("cx") !== before[i]).length;
out.viewBox = root.querySelector("svg").getAttribute("viewBox");
const pre = document.createElement("pre");
pre.id = "probe";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script></body>"""


@pytest.mark.skipif(
    _browser() is None, reason="needs a Chromium on PATH (apt-get install chromium)"
)
def test_the_explorer_hovers_highlights_and_switches_snapshots_in_a_browser(
    runs, p1_tiny, tmp_path
):
    import base64
    import html as html_lib
    import io
    import subprocess

    from PIL import Image

    from vislab.data.images import read_rgb

    cls = runs[0]
    assert main(["report", str(cls), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    payload = re.search(
        r'<div class="explorer">\s*<script type="application/json">(.*?)</script>', page, re.S
    )
    d = json.loads(payload.group(1))
    coords = np.load(cls / "embed" / "coords.npz")
    assert d["names"] == coords["names"].tolist() and d["labels"] == coords["labels"].tolist()
    epochs = json.loads((cls / "embed" / "metrics.json").read_text())["tsne"]
    names = [f"t-SNE, epoch {e['epoch']}" for e in epochs] + [
        f"PCA, epoch {e['epoch']}" for e in epochs
    ]
    assert [v["name"] for v in d["views"]] == names
    # the sprite's cell i is image i
    sprite = np.asarray(Image.open(io.BytesIO(base64.b64decode(d["sprite"].split(",", 1)[1]))))
    cols, i = d["columns"], 5
    cell = sprite[(i // cols) * 32 : (i // cols + 1) * 32, (i % cols) * 32 : (i % cols + 1) * 32]
    assert np.array_equal(cell, read_rgb(p1_tiny / "val_50" / d["names"][i], size=32))

    probe = tmp_path / "rep" / "probe.html"  # runs under the page's policy: with its nonce
    nonce = re.search(r'<script nonce="([^"]+)">', page).group(1)
    script = PROBE.replace("CLASS", str(d["labels"][i])).replace(
        "<script>", f'<script nonce="{nonce}">'
    )
    probe.write_text(page.replace("</body>", script))
    browser = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"]
    dom = subprocess.run([*browser, probe.as_uri()], capture_output=True, text=True, timeout=120)
    out = json.loads(
        html_lib.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout).group(1))
    )
    last = len(epochs) - 1  # the page opens on the last t-SNE snapshot
    pred = d["views"][last]["pred"][i]
    assert out["view"] == names[last]
    assert out["hiddenBefore"] and not out["hiddenAfter"]
    assert (
        out["text"]
        == f"{d['names'][i]}: true {d['classes'][d['labels'][i]]}, predicted {d['classes'][pred]}"
    )
    assert out["position"] == f"{-(i % cols) * 96}px {-(i // cols) * 96}px".replace("-0px", "0px")
    assert (
        out["dimmed"] == sum(c != d["labels"][i] for c in d["labels"]) and out["dimmedAgain"] == 0
    )
    assert out["moved"] > 0 and out["viewBox"] == "0 0 600 600"


HOSTILE = """<img src=x onerror="document.title='PWNED'"> & |pipe|"""


def _dom(page) -> str:
    """The page's DOM after a headless Chromium loaded it (and ran what it would run)."""
    import subprocess

    browser = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"]
    return subprocess.run(
        [*browser, page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout


@pytest.mark.skipif(
    _browser() is None, reason="needs a Chromium on PATH (apt-get install chromium)"
)
def test_a_hostile_run_name_is_text_in_the_report_and_runs_nowhere(runs, tmp_path):
    cls = _copy_run(runs[0], tmp_path / HOSTILE)
    assert main(["report", str(cls), "--out", str(tmp_path / "rep")]) == 0
    page = tmp_path / "rep" / "report.html"
    html = page.read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "<img" not in md and "&lt;img src=x" in md and "&amp; \\|pipe\\|" in md
    dom = _dom(page)
    assert re.search(r"<title>(.*?)</title>", dom).group(1) != "PWNED"
    assert '<img src="x"' not in dom and "onerror=&quot;document.title" in dom  # shown as text
    assert "Content-Security-Policy" in html and "default-src 'none'" in html.replace("&#39;", "'")


@pytest.mark.skipif(
    _browser() is None or not shutil.which("pdftotext"),
    reason="needs a Chromium (apt-get install chromium) and pdftotext (poppler-utils) on PATH",
)
def test_the_printed_report_runs_no_script_and_shows_no_other_file(tmp_path):
    import subprocess

    from vislab.report.build import content_policy
    from vislab.report.pdf import print_pdf

    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-4242")
    body = (
        f'<p>the report</p><iframe src="{secret.as_uri()}"></iframe>'
        '<script>document.body.append("SCRIPT-RAN")</script>'
    )
    head = f'<meta http-equiv="Content-Security-Policy" content="{content_policy(None)}">'

    def printed(name: str, page: str) -> str:
        html = tmp_path / f"{name}.html"
        html.write_text(page)
        pdf = print_pdf(html, tmp_path / f"{name}.pdf", _browser())
        return subprocess.run(["pdftotext", pdf, "-"], capture_output=True, text=True).stdout

    bare = printed("bare", f"<html><body>{body}</body></html>")
    assert "SECRET-4242" in bare and "SCRIPT-RAN" in bare  # what a page without the policy does
    guarded = printed("guarded", f"<html><head>{head}</head><body>{body}</body></html>")
    assert "the report" in guarded
    assert "SECRET-4242" not in guarded and "SCRIPT-RAN" not in guarded


def test_pdf_takes_a_pdf_name_not_a_run_folder(runs, tmp_path, capsys):
    cls, seg = runs
    assert main(["report", "--pdf", str(cls), str(seg), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert f"--pdf {cls}: give a file name ending in .pdf" in err and "Traceback" not in err
    assert not (tmp_path / "rep").exists()


# -- the report of a user's own task: no course words, the user's classes and colours ---------
COURSE_WORDS = (
    "Problem 1",
    "Problem 2",
    "Model A",
    "Model B",
    "stand-in",
    "land-cover",
    "resnext101_64x4d",
    "fcn32s_vgg16",
    "deeplabv3_resnet50",
    "model_a",
)
TREE_CLASSES = ["cat", "dog", "eel", "fox"]


def _read_index(path):
    from PIL import Image

    return np.asarray(Image.open(path))


def _miou_present(truth, pred, k, ignore):
    """Reference: the mean IoU of the classes in the tile's truth or prediction, ignored truth
    pixels left out."""
    keep = truth != ignore
    t, p = truth[keep], pred[keep]
    ious = []
    for c in range(k):
        union = np.count_nonzero((t == c) | (p == c))
        if union:
            ious.append(np.count_nonzero((t == c) & (p == c)) / union)
    return sum(ious) / len(ious)


def _write_tree(root, split, per_class, seed):
    from PIL import Image

    from vislab.data.synthetic import grating_images

    images, labels = grating_images(len(TREE_CLASSES), per_class, 32, seed)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / split / TREE_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def own_runs(tmp_path_factory):
    """A segmentation run on a set of its own (3 named classes, images/ + masks/, palette-mode
    masks with ignored pixels, the example recipe) and a classification run on an ImageFolder
    tree of 4 named classes."""
    from conftest import REPO

    from vislab.data.synthetic import write_scene_layout

    root = tmp_path_factory.mktemp("own_runs")
    scene = write_scene_layout(root / "scene", n_train=12, n_val=4, size=32)
    seg = root / "seg"
    args = ["train", str(REPO / "configs" / "own_segmentation_example.yaml"), "--data", str(scene)]
    args += ["--out", str(seg), "--epochs", "2"]
    for s in ("trainer.threads=1", "trainer.progress_bar=false", "model.kwargs.width=32"):
        args += ["--set", s]
    assert main(args) == 0
    ckpt = seg / "checkpoints" / "best.ckpt"
    images = ["--images", str(scene / "val"), "--out", str(seg / "val_masks")]
    assert main(["predict", "--ckpt", str(ckpt), *images]) == 0
    tree = root / "tree"
    _write_tree(tree, "train", 8, seed=1)
    _write_tree(tree, "val", 4, seed=2)
    cls = root / "cls"
    args = ["train", str(REPO / "configs" / "p1_cpu.yaml"), "--data", str(tree), "--out", str(cls)]
    args += ["--epochs", "2"]
    for s in ("model.kwargs.width=8", "data.batch_size=16", "trainer.threads=1"):
        args += ["--set", s]
    assert main([*args, "--set", "trainer.progress_bar=false"]) == 0
    assert main(["embed", str(cls)]) == 0
    return scene, seg, tree, cls


def test_a_report_of_an_own_segmentation_set_speaks_of_its_classes(own_runs, tmp_path):
    from vislab.data.synthetic import SCENE_CLASSES, SCENE_IGNORE, SCENE_PALETTE

    scene, seg, _, _ = own_runs
    tiles = sorted(p.stem for p in (scene / "val" / "masks").glob("*.png"))
    truths = {t: _read_index(scene / "val" / "masks" / f"{t}.png") for t in tiles}
    for tile, truth in truths.items():  # right everywhere...
        pred = np.where(truth == SCENE_IGNORE, 0, truth).astype(np.uint8)
        Image.fromarray(pred).save(seg / "val_masks" / f"{tile}.png")
    bad = tiles[1]  # ...but one tile, predicted road all over
    Image.fromarray(np.ones_like(truths[bad])).save(seg / "val_masks" / f"{bad}.png")
    assert main(["report", str(seg), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    md = (tmp_path / "rep" / "report.md").read_text()

    named = "Segmentation of 3 classes (background, road, building) on scene"
    assert f"<title>Report: s{named[1:]}</title>" in html and f"<h2>{named}</h2>" in html
    for word in COURSE_WORDS:
        assert word not in html, word
    # the score table: a column per class, headed by its name in the recipe's colour
    for name, rgb in zip(SCENE_CLASSES, SCENE_PALETTE, strict=True):
        colour = "#{:02x}{:02x}{:02x}".format(*rgb)
        assert f'<i class="swatch" style="background: {colour}"></i>{name}</th>' in html
    assert "<td>3: background, road, building</td>" in html
    assert "pixels of index 255 ignored" in html

    # where it fails: the confusion of the predicted masks, ignored truth pixels left out
    counts = {c: sum(int(np.sum(t == c)) for t in truths.values()) for c in range(3)}
    wrong = int(np.sum(truths[bad] == 0))
    said = f"background taken for road, {wrong:,} pixels ({wrong / counts[0]:.1%} of background)"
    assert md_text(f"The most frequent mistakes over the validation pixels: {said}") in md
    ones = np.ones_like(truths[bad])
    miou = _miou_present(truths[bad], ones, 3, SCENE_IGNORE)
    assert md_text(f"the worst are {bad} ({miou:.3f}; mostly background taken for road)") in md

    # the class balance of the train masks (ignored pixels not counted)
    train = np.concatenate(
        [_read_index(p).ravel() for p in sorted((scene / "train" / "masks").glob("*.png"))]
    )
    shares = np.bincount(train[train != SCENE_IGNORE], minlength=3) / np.sum(train != SCENE_IGNORE)
    small = int(np.argmin(shares))
    assert f"Smallest class: {SCENE_CLASSES[small]}, {shares[small]:.1%} of the train pixels" in md
    assert "![the worst validation tiles](figures/seg_worst_tiles.png)" in md


def test_a_report_of_a_classification_tree_names_its_classes(own_runs, tmp_path):
    _, _, tree, cls = own_runs
    files = sorted(f"{c}/{p.name}" for c in TREE_CLASSES for p in (tree / "val" / c).iterdir())
    guess = {f: f.split("/")[0] for f in files}
    cats = [f for f in files if f.startswith("cat/")]
    for f in cats[:2]:
        guess[f] = "dog"  # two cats taken for dogs
    (cls / "val_pred.csv").write_text(
        "filename,label\n" + "".join(f"{f},{guess[f]}\n" for f in files)
    )
    assert main(["report", str(cls), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    md = (tmp_path / "rep" / "report.md").read_text()

    named = "Classification of 4 classes (cat, dog, eel, fox) on tree"
    assert f"<h2>{named}</h2>" in html and f"# Report: {md_text('c' + named[1:])}" in md
    for word in COURSE_WORDS:
        assert word not in html, word
    assert "<td>4: cat, dog, eel, fox</td>" in html
    share = 2 / len(cats)
    assert (
        md_text(
            "The most frequent mistakes over the validation images: "
            f"cat taken for dog, 2 images ({share:.1%} of cat)."
        )
        in md
    )
    accuracy = {
        c: float(np.mean([guess[f] == c for f in files if f.startswith(f"{c}/")]))
        for c in TREE_CLASSES
    }
    overall = float(np.mean([guess[f] == f.split("/")[0] for f in files]))
    assert (
        f"Per-class accuracy spans {min(accuracy.values()):.2f} to 1.00 around the overall "
        f"{overall:.4f}: lowest cat {accuracy['cat']:.2f}" in md
    )
    assert (tmp_path / "rep" / "figures" / "cls_confused.png").is_file()
    # the explorer's legend and tooltips name the classes
    payload = re.search(r'<script type="application/json">(.*?)</script>', html, re.S)
    assert json.loads(payload.group(1))["classes"] == TREE_CLASSES


def test_a_report_of_the_course_and_an_own_set_has_a_part_for_each(runs, own_runs, tmp_path):
    _, seg = runs
    _, own, _, _ = own_runs
    assert main(["report", str(seg), str(own), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    title = (
        "Report: image classification and land-cover segmentation; segmentation of 3 classes "
        "(background, road, building) on scene"
    )
    assert f"<h1>{title}</h1>" in html
    assert "<h2>Problem 2: land-cover segmentation</h2>" in html
    assert "<h2>Segmentation of 3 classes (background, road, building) on scene</h2>" in html
    # roles only for the course's runs: the own run's heading has none
    assert f'<h3>{seg.parent.name}-seg: lraspp_mobilenet_v3 <span class="role">' in html
    assert f"<h3>{own.parent.name}-seg: fpn</h3>" in html


@pytest.mark.parametrize(
    "task, model, expected",
    [
        ("classification", {"name": "torchvision/resnext101_64x4d", "kwargs": {}}, "Model B"),
        (
            "classification",
            {"name": "timm/tf_efficientnet_lite0", "kwargs": {"weights": "imagenet"}},
            "CPU stand-in for Model B, fine-tuned from ImageNet (tf_efficientnet_lite0)",
        ),
        (
            "segmentation",
            {"name": "unet", "kwargs": {"encoder": "timm/resnet18", "weights": None}},
            "CPU stand-in for Model B, from scratch (U-Net over resnet18)",
        ),
        ("segmentation", {"name": "fcn32s_vgg16", "kwargs": {}}, "Model A"),
    ],
)
def test_course_roles_of_library_models_and_decoders(task, model, expected):
    from vislab.course.report_roles import role

    assert role(task, model) == expected


# -- run folders that are not as training wrote them: one-line errors, the --out folder kept -----
@pytest.fixture(scope="module")
def tree_run(tmp_path_factory):
    """A quick classification run on a tree of 4 named classes (no course data: its report
    draws its own model alone)."""
    from conftest import REPO

    root = tmp_path_factory.mktemp("tree_run")
    _write_tree(root / "tree", "train", 4, seed=1)
    _write_tree(root / "tree", "val", 2, seed=2)
    run = root / "run"
    args = ["train", str(REPO / "configs" / "p1_cpu.yaml"), "--data", str(root / "tree")]
    args += ["--out", str(run), "--epochs", "2"]
    for s in ("model.kwargs.width=8", "data.batch_size=16", "trainer.threads=1"):
        args += ["--set", s]
    assert main([*args, "--set", "trainer.progress_bar=false"]) == 0
    return run


def _tree(folder):
    """Every file under folder with its bytes (the folder's state to compare)."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_runs_never_share_a_label_or_a_figure(tree_run, tmp_path):
    # a/run and b/run are named a-run and b-run: a folder named a-run beside them is not
    copies = [
        tmp_path / "a" / "run",
        tmp_path / "b" / "run",
        tmp_path / "a-run",
        tmp_path / "A-RUN",
    ]
    for i, copy in enumerate(copies):
        shutil.copytree(tree_run, copy)
        rows = (copy / "metrics.csv").read_text().splitlines()
        head, last = rows[0].split(","), rows[-1].split(",")
        last[head.index("val_acc")] = f"{0.1 * (i + 1):.6f}"  # each copy a curve of its own
        (copy / "metrics.csv").write_text("\n".join([*rows[:-1], ",".join(last)]) + "\n")
    out = tmp_path / "rep"
    assert main(["report", *map(str, copies), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    labels = re.findall(r"^### (.+): ", md, re.M)
    assert len(labels) == 4 and len({label.casefold() for label in labels}) == 4
    curves = re.findall(r"\]\((figures/[^)]+_curves\.png)\)", md)
    assert len(set(curves)) == 4 and len({c.casefold() for c in curves}) == 4
    assert len({(out / c).read_bytes() for c in curves}) == 4


HOSTILE_MD = "![t](http:evil.example|x.png) [c](javascript:alert(1)) *b* _i_ `x` # h"


def test_names_in_the_markdown_are_literal_text_and_figure_links_work(tree_run, tmp_path):
    from urllib.parse import unquote

    run = _copy_run(tree_run, tmp_path / HOSTILE_MD)
    out = tmp_path / "rep"
    assert main(["report", str(run), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert f"### {md_text(HOSTILE_MD)}: " in md
    assert "!\\[t\\]\\(http:evil.example\\|x.png\\) \\[c\\]\\(javascript:alert\\(1\\)\\)" in md
    # the only live links are the figures' images, each to its file beside report.md
    links = re.findall(r"(?<!\\)\[[^\]]*(?<!\\)\]\(([^)]*)\)", md)
    assert links and all(link.startswith("figures/") for link in links)
    assert "javascript:" not in "".join(links)
    for link in links:
        assert (out / unquote(link)).is_file(), link
    assert f"figures/{HOSTILE_MD}_curves.png" in map(unquote, links)
    text = re.sub(r"\]\(figures/[^)]*\)", "]()", md)  # what a reader sees as text
    for mark in ("*b*", "_i_", "`x`", "[c]"):
        assert mark not in text.replace("\\" + mark[0], "")  # every mark escaped
    assert md_text("# h\nx") == "\\# h x" and md_text("1. a") == "1\\. a"
    assert md_text("see https://x.example or www.x.example") == (
        "see https\\://x.example or www\\.x.example"
    )


def _report_err(capsys, *args):
    capsys.readouterr()
    rc = main(["report", *map(str, args)])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("report:")]
    assert len(err) == 1 and err[0].startswith("vislab report: error: "), err  # no traceback
    return rc, err[0]


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("metrics.csv", b"epoch,val_acc\n1,0.5\n2,abc\n", "line 3: val_acc is 'abc', not a number"),
        ("metrics.csv", b"epoch,val_acc\n1,0.5\xff\n", "not UTF-8 text: byte 0xff at offset 19"),
        ("metrics.csv", b"epoch,val_acc\n1,0.5\n2.5,0.5\n", "epoch is '2.5', not a whole epoch"),
        (
            "metrics.csv",
            b"epoch,val_acc\n1,0.5,9\n2,0.5\n",
            "line 2 has 3 fields, more than the 2 columns of its header",
        ),
        (
            "class_balance.json",
            b'{"classes": 5, "train": [1], "val": [1], "unit": "images"}',
            "classes is 5, not a list of class names",
        ),
        (
            "class_balance.json",
            b'{"classes": ["a"], "train": {"a": "many"}, "val": [1], "unit": "images"}',
            "train is {'a': 'many'}, not a list of whole counts",
        ),
        (
            "class_balance.json",
            b'{"classes": ["a", "b"], "train": [1], "val": [1, 2], "unit": "images"}',
            "train holds 1 counts for 2 classes",
        ),
    ],
)
def test_a_damaged_run_file_is_a_one_line_error(tree_run, tmp_path, capsys, name, content, said):
    run = _copy_run(tree_run, tmp_path / "run")
    (run / name).write_bytes(content)
    out = tmp_path / "new" / "rep"
    rc, err = _report_err(capsys, run, "--out", out)
    assert rc == 2 and f"{run / name}" in err and said in err, err
    assert not (tmp_path / "new").exists()  # made for the report, removed with it


def test_a_refused_report_leaves_the_out_folder_as_it_was(tree_run, tmp_path, capsys, monkeypatch):
    import os

    out = tmp_path / "rep"
    assert main(["report", str(tree_run), "--out", str(out)]) == 0
    (out / "notes.txt").write_text("the user's own")
    before = _tree(out)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _report_err(capsys, tree_run, empty, "--out", out)[0] == 2
    assert _tree(out) == before
    # a full disk after the first figure: a run of other numbers, so that its figures differ
    other = _copy_run(tree_run, tmp_path / "other" / tree_run.name)
    rows = (other / "metrics.csv").read_text().splitlines()
    (other / "metrics.csv").write_text("\n".join(rows[:-1]) + "\n")
    replace, calls = os.replace, []

    def full_after_one(*args, **kwargs):
        calls.append(args)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return replace(*args, **kwargs)

    monkeypatch.setattr(os, "replace", full_after_one)
    assert _report_err(capsys, other, "--out", out)[0] == 2
    monkeypatch.undo()
    assert _tree(out) == before and len(calls) == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "figures",
        "notes.txt",
        "report.html",
        "report.md",
    ]
    # and an --out that was not there is not there after a refusal
    assert _report_err(capsys, empty, "--out", tmp_path / "fresh" / "rep")[0] == 2
    assert not (tmp_path / "fresh").exists()
    # a report that succeeds replaces the figures whole
    assert main(["report", str(other), "--out", str(out)]) == 0
    assert (out / "notes.txt").read_text() == "the user's own"


def test_a_run_without_class_balance_json_takes_its_class_names_from_its_checkpoint(
    tree_run, tmp_path
):
    run = _copy_run(tree_run, tmp_path / "run")
    (run / "class_balance.json").unlink()
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"# Report: {md_text('classification of 4 classes (cat, dog, eel, fox) on tree')}" in md
    assert "0 classes" not in md


def test_a_tree_runs_missing_predictions_say_how_to_make_them_and_that_works(tree_run, tmp_path):
    """predict reads flat folders: the hint predicts each class folder and gathers the rows
    as CLASS/FILE, which is done here as it says, and the section then appears."""
    run = _copy_run(tree_run, tmp_path / "run")
    val = tree_run.parent / "tree" / "val"
    best = run / "checkpoints" / "best.ckpt"
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    hint = (
        f"{val} is a tree of class folders and `vislab predict` reads flat folders: run "
        f"`vislab predict --ckpt {best} --images {val}/CLASS --out CLASS.csv` for each class "
        f"folder and write their rows into {run / 'val_pred.csv'} as CLASS/FILE,label"
    )
    assert md_text(hint) in md and "Where it fails" not in md
    rows = ["filename,label"]
    for cls in TREE_CLASSES:
        out = tmp_path / f"{cls}.csv"
        assert (
            main(["predict", "--ckpt", str(best), "--images", str(val / cls), "--out", str(out)])
            == 0
        )
        rows += [f"{cls}/{row}" for row in out.read_text().splitlines()[1:]]
    (run / "val_pred.csv").write_text("\n".join(rows) + "\n")
    assert main(["report", str(run), "--out", str(tmp_path / "rep2")]) == 0
    md = (tmp_path / "rep2" / "report.md").read_text()
    assert "Where it fails" in md and "Missing: where it fails" not in md


@pytest.mark.parametrize(
    "name",
    [
        "config.yaml",
        "metrics.csv",
        "class_balance.json",
        "val_pred.csv",
        "embed/metrics.json",
        "checkpoints/epoch_001.ckpt",
    ],
)
def test_a_fifo_in_a_run_folder_is_named_not_shown_as_missing(tree_run, tmp_path, capsys, name):
    from odd_files import fifos

    run = _copy_run(tree_run, tmp_path / "run")
    (run / name).unlink(missing_ok=True)
    with fifos(run / name) as (pipe,):
        rc, err = _report_err(capsys, run, "--out", tmp_path / "rep")
    assert rc == 2 and f"{pipe} is a FIFO (named pipe), not a file of the run" in err, err
