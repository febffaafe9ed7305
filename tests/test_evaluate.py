import json
import struct

import pytest

from vislab.cli import main
from vislab.metrics.evaluate import evaluate_classification


def _csv(path, rows, header="filename,label"):
    path.write_text(header + "\n" + "".join(f"{n},{label}\n" for n, label in rows))
    return path


def test_accuracy_per_class_and_confusion(tmp_path):
    gt = _csv(tmp_path / "gt.csv", [("a.png", 0), ("b.png", 0), ("c.png", 1), ("d.png", 2)])
    pred = _csv(tmp_path / "p.csv", [("d.png", 2), ("a.png", 0), ("b.png", 1), ("c.png", 1)])
    r = evaluate_classification(pred, gt, tmp_path / "ev")
    assert r["accuracy"] == pytest.approx(0.75)
    assert r["per_class_accuracy"] == {"0": 0.5, "1": 1.0, "2": 1.0}
    assert r["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["accuracy"] == pytest.approx(0.75)
    lines = (tmp_path / "ev" / "confusion.csv").read_text().splitlines()
    assert lines[1] == "0,1,1,0"
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 1000


def test_ground_truth_from_a_labeled_folder(tmp_path, p1_tiny):
    names = sorted(p.name for p in (p1_tiny / "val_50").iterdir())
    pred = _csv(tmp_path / "p.csv", [(n, n.split("_")[0]) for n in names])
    r = evaluate_classification(pred, p1_tiny / "val_50", None)
    assert r["accuracy"] == 1.0 and r["n"] == len(names)
    assert (tmp_path / "p_eval" / "metrics.json").exists()


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([("a.png", 0)], "filename,label", "1 file.s. of the ground truth are missing: b.png"),
        (
            [("a.png", 0), ("b.png", 1), ("z.png", 1)],
            "filename,label",
            "not in the ground truth: z.png",
        ),
        ([("a.png", 0), ("a.png", 0), ("b.png", 1)], "filename,label", "a.png is listed twice"),
        ([("a.png", 0), ("b.png", 1)], "file,label", "first row must be 'filename,label'"),
        ([("a.png", 0), ("b.png", "cat")], "filename,label", "label 'cat' is not an integer"),
        (  # one wild label: a one-line error, not a 10^12-cell confusion matrix
            [("a.png", 0), ("b.png", 1000000)],
            "filename,label",
            r"b.png is predicted as 1000000, not a class of the ground truth \(0..1\)",
        ),
        ([("a.png", -1), ("b.png", 1)], "filename,label", "a.png is predicted as -1"),
    ],
)
def test_mismatched_predictions_are_refused_through_the_cli(
    tmp_path, capsys, rows, header, message
):
    gt = _csv(tmp_path / "gt.csv", [("a.png", 0), ("b.png", 1)])
    pred = _csv(tmp_path / "p.csv", rows, header)
    code = main(["evaluate", "--pred", str(pred), "--gt", str(gt)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "p_eval").exists()


def test_a_csv_saved_by_excel_with_a_byte_order_mark_is_read(tmp_path):
    gt = _csv(tmp_path / "gt.csv", [("a.png", 0), ("b.png", 1)])
    pred = tmp_path / "p.csv"
    pred.write_bytes("filename,label\r\na.png,0\r\nb.png,0\r\n".encode("utf-8-sig"))
    assert evaluate_classification(pred, gt, tmp_path / "ev")["accuracy"] == 0.5


def _refused(capsys, args, message):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err


def test_csvs_of_the_header_alone_are_refused(tmp_path, capsys):
    empty = _csv(tmp_path / "h.csv", [])
    message = f"{empty}: no rows to score"
    _refused(capsys, ["evaluate", "--pred", empty, "--gt", empty], message)
    assert not (tmp_path / "h_eval").exists()


def test_a_ground_truth_label_left_empty_is_refused(tmp_path, capsys):
    gt = _csv(tmp_path / "gt.csv", [("a.png", 0), ("b.png", ""), ("c.png", 1)])
    pred = _csv(tmp_path / "p.csv", [("a.png", 0), ("b.png", 1), ("c.png", 1)])
    message = f"{gt} line 3: an empty label of b.png"  # not a class "" of its own
    _refused(capsys, ["evaluate", "--pred", pred, "--gt", gt], message)
    assert not (tmp_path / "p_eval").exists()


def test_an_out_folder_that_is_a_file_is_named(tmp_path, capsys):
    gt = _csv(tmp_path / "gt.csv", [("a.png", 0), ("b.png", 1)])
    taken = tmp_path / "taken"
    taken.write_text("mine")
    for out in (taken, taken / "sub"):
        message = f"--out {out} must be a folder; {taken} is a file"
        _refused(capsys, ["evaluate", "--pred", gt, "--gt", gt, "--out", out], message)
    assert taken.read_text() == "mine"


def test_mask_scores_are_not_written_beside_an_out_that_is_a_file(tmp_path):
    from vislab.errors import VislabError
    from vislab.metrics.mask_scores import write_mask_scores

    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = {"miou": 0.5, "confusion": [[1, 0], [0, 1]]}
    with pytest.raises(VislabError, match=f"--out {taken} must be a folder; {taken} is a file"):
        write_mask_scores(result, json_path=tmp_path / "s.json", out_dir=taken)
    assert not (tmp_path / "s.json").exists()  # a refused command writes nothing


@pytest.mark.parametrize(
    "header",
    [
        struct.pack("<Q", 2**62) + b"{}",  # a length past any memory
        struct.pack("<Q", 2**64 - 1) + b"{}",  # past an index
        struct.pack("<Q", 5) + b"[1,2]",  # JSON, but not an object
        b"abc",  # shorter than the length itself
    ],
    ids=["2^62", "2^64-1", "list", "short"],
)
def test_evaluate_reads_a_broken_safetensors_header_as_predict_does(tmp_path, capsys, header):
    model = tmp_path / "m.safetensors"
    model.write_bytes(header)
    gt = _csv(tmp_path / "gt.csv", [("a.png", 0), ("b.png", 1)])
    message = f"cannot read {model}: not a safetensors file"
    _refused(capsys, ["evaluate", "--ckpt", model, "--pred", gt, "--gt", gt], message)
    images = tmp_path / "val_50"  # the name that has predict read the metadata first too
    images.mkdir()
    for folder in (images, tmp_path):
        out = tmp_path / "p.csv"
        _refused(capsys, ["predict", "--ckpt", model, "--images", folder, "--out", out], message)
