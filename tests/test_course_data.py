"""`vislab data download`: the course zip, unpacked to the layout every recipe expects."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from vislab.cli import main
from vislab.course.data import locate
from vislab.data.synthetic import write_p1_layout, write_p2_layout


@pytest.fixture(scope="module")
def course_zip(tmp_path_factory) -> Path:
    """A small hw1_data.zip shaped like the course's: hw1_data/{p1_data,p2_data}/..."""
    src = tmp_path_factory.mktemp("src")
    write_p1_layout(src / "hw1_data" / "p1_data", num_classes=3, per_class=4)
    write_p2_layout(src / "hw1_data" / "p2_data", n_train=3, n_val=2, size=32)
    path = src / "hw1_data.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted((src / "hw1_data").rglob("*")):
            z.write(f, f.relative_to(src).as_posix())
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_unpacks_a_local_zip_to_the_course_layout(course_zip, tmp_path, capsys):
    assert main(["data", "download", str(tmp_path), "--zip", str(course_zip)]) == 0
    src = course_zip.parent / "hw1_data"
    assert _files(tmp_path / "p1_data") == _files(src / "p1_data")
    assert _files(tmp_path / "p2_data") == _files(src / "p2_data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p1_data", "p2_data"]  # no scratch
    out = capsys.readouterr().out
    assert "train_50/ 12, val_50/ 6" in out and "train/ 3, validation/ 2" in out
    assert locate(tmp_path) == {"p1": tmp_path / "p1_data", "p2": tmp_path / "p2_data"}


def test_downloads_over_a_url(course_zip, tmp_path, capsys):
    # urllib's file:// handler stands in for HTTP: the same streaming and unpacking code runs
    assert main(["data", "download", str(tmp_path), "--url", course_zip.as_uri()]) == 0
    mib = -(-course_zip.stat().st_size // (1 << 20))
    assert f"hw1_data.zip: {mib}/{mib} MiB (" in capsys.readouterr().err  # off a terminal
    assert _files(tmp_path / "p1_data") == _files(course_zip.parent / "hw1_data" / "p1_data")
    assert not list(tmp_path.glob(".*"))  # the partial download is gone


@pytest.mark.parametrize(
    "url, message",
    [
        ("hw1_data.zip", "--url hw1_data.zip: give an http:// or https:// address"),
        ("ftp://example.org/hw1_data.zip", "give an http:// or https:// address"),
    ],
)
def test_an_address_that_is_not_one_is_one_line(url, message, tmp_path, capsys):
    assert main(["data", "download", str(tmp_path / "d"), "--url", url]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_a_download_larger_than_the_free_space_is_refused_before_writing(
    course_zip, tmp_path, capsys, monkeypatch
):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1 << 30))
    dest = tmp_path / "d"
    assert main(["data", "download", str(dest), "--url", course_zip.as_uri()]) == 2
    size = course_zip.stat().st_size / 1e9
    assert f"is {size:.1f} GB and {dest} has 1.1 GB free" in capsys.readouterr().err
    assert not dest.exists()


def test_a_download_that_is_no_zip_is_named_by_its_address(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a zip")
    assert main(["data", "download", str(tmp_path / "d"), "--url", text.as_uri()]) == 2
    err = capsys.readouterr().err
    assert f"{text.as_uri()} is not a zip file" in err and ".partial" not in err


def test_no_network_is_one_clear_line(tmp_path, capsys):
    # port 9 (discard) on the loopback: refused at once, as an offline machine would be
    assert main(["data", "download", str(tmp_path), "--url", "http://127.0.0.1:9/x.zip"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no network?" in err and "--zip FILE" in err
    assert list(tmp_path.iterdir()) == []


def test_a_web_page_instead_of_the_zip_is_refused(tmp_path, capsys):
    # Google Drive answers a quota or sign-in page with status 200 and text/html
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "page.html").write_text("<html>Quota exceeded</html>")
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www")
    )
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/page.html"
        assert main(["data", "download", str(tmp_path / "d"), "--url", url]) == 2
    finally:
        server.shutdown()
    assert "web page, not the zip" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # a failed download leaves no folder


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "members, message",
    [
        ({"hw1_data/p1_data/val_gt.csv": b"filename,label\n"}, "no p1_data/ and p2_data/"),
        ({"../evil.txt": b"x"}, "unsafe path: ../evil.txt"),
        (None, "is not a zip file"),
    ],
)
def test_bad_zips_are_refused_and_leave_nothing(tmp_path, capsys, members, message):
    bad = tmp_path / "bad.zip"
    if members is None:
        bad.write_bytes(b"PK but not really a zip")
    else:
        _zip(bad, members)
    dest = tmp_path / "dest"
    assert main(["data", "download", str(dest), "--zip", str(bad)]) == 2
    assert message in capsys.readouterr().err
    assert not dest.exists()  # nor the folder it made


def test_a_zip_with_an_empty_split_is_refused(course_zip, tmp_path, capsys):
    with zipfile.ZipFile(course_zip) as z:
        members = {n: z.read(n) for n in z.namelist() if "/validation/" not in n}
    bad = _zip(tmp_path / "novalidation.zip", members)
    assert main(["data", "download", str(tmp_path / "d"), "--zip", str(bad)]) == 2
    assert "p2_data/validation is missing or holds no *_sat.jpg" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # a failed download leaves no folder


def test_existing_data_is_never_overwritten(course_zip, tmp_path, capsys):
    (tmp_path / "p2_data").mkdir()
    (tmp_path / "p2_data" / "mine.txt").write_text("keep")
    assert main(["data", "download", str(tmp_path), "--zip", str(course_zip)]) == 2
    assert "p2_data already exists" in capsys.readouterr().err
    assert (tmp_path / "p2_data" / "mine.txt").read_text() == "keep"
    assert not (tmp_path / "p1_data").exists()


def test_locate_knows_the_shared_and_the_unzipped_layouts(tmp_path):
    (tmp_path / "a" / "dlcv-p1").mkdir(parents=True)
    (tmp_path / "a" / "dlcv-p2").mkdir()
    (tmp_path / "b" / "hw1_data" / "p2_data").mkdir(parents=True)
    assert locate(tmp_path / "a") == {"p1": tmp_path / "a/dlcv-p1", "p2": tmp_path / "a/dlcv-p2"}
    assert locate(tmp_path / "b") == {"p2": tmp_path / "b/hw1_data/p2_data"}


def test_a_zip_that_unpacks_beyond_the_free_space_is_refused_before_writing(
    tmp_path, capsys, monkeypatch
):
    import shutil

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("hw1_data/p1_data/zeros.bin", bytes(64 << 20))  # 64 MB in about 64 kB
    assert bomb.stat().st_size < 1 << 20
    dest = tmp_path / "dest"
    dest.mkdir()
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=(1 << 30) + (32 << 20)))
    assert main(["data", "download", str(dest), "--zip", str(bomb)]) == 2
    err = capsys.readouterr().err
    assert f"{bomb} unpacks to 0.1 GB and {dest} has 1.1 GB free" in err
    assert list(dest.iterdir()) == []


class _Stalling(http.server.BaseHTTPRequestHandler):
    """Announces a 4 MiB zip, sends 1 MiB of it and then nothing: a download in progress."""

    release = threading.Event()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(4 << 20))
        self.end_headers()
        self.wfile.write(bytes(1 << 20))
        self.wfile.flush()
        self.release.wait(120)

    def log_message(self, *args):
        pass


def test_an_interrupted_download_leaves_nothing_and_a_second_one_waits_its_turn(
    course_zip, tmp_path, capsys
):
    import signal
    import subprocess
    import sys
    import time

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, dest = f"http://127.0.0.1:{server.server_port}/hw1_data.zip", tmp_path / "d"
    scratch = lambda: sorted(p.name for p in dest.glob(".hw1_data.zip.*"))  # noqa: E731

    def started() -> subprocess.Popen:
        argv = [sys.executable, "-m", "vislab", "data", "download", str(dest), "--url", url]
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in dest.glob(".hw1_data.zip.*")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        return proc

    try:
        proc = started()
        assert len(scratch()) == 1 and scratch()[0].endswith(".partial")
        # a second download into the same folder is refused at once, the first untouched
        assert main(["data", "download", str(dest), "--zip", str(course_zip)]) == 2
        assert f"DIR {dest} is being written by another vislab command" in capsys.readouterr().err
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert not dest.exists()  # the partial zip went with it, and the folder it made

        proc = started()
        proc.kill()  # SIGKILL: no code of its own runs
        proc.wait(timeout=60)
        assert len(scratch()) == 1
        assert main(["data", "download", str(dest), "--zip", str(course_zip)]) == 0
        assert scratch() == [] and sorted(p.name for p in dest.iterdir()) == ["p1_data", "p2_data"]
    finally:
        _Stalling.release.set()
        server.shutdown()


def test_a_zip_that_is_a_fifo_or_a_folder_is_named_as_such(tmp_path, capsys):
    from odd_files import fifos

    dest = tmp_path / "dest"
    with fifos(tmp_path / "pipe.zip") as (pipe,):
        assert main(["data", "download", str(dest), "--zip", str(pipe)]) == 2
    err = capsys.readouterr().err
    assert f"{pipe} is a FIFO (named pipe), not a zip file: vislab reads regular files only" in err
    (tmp_path / "folder.zip").mkdir()
    assert main(["data", "download", str(dest), "--zip", str(tmp_path / "folder.zip")]) == 2
    assert f"{tmp_path / 'folder.zip'} is a folder, not a zip file" in capsys.readouterr().err
    assert not dest.exists()


def _patched_member(course_zip: Path, path: Path, at: dict[int, bytes]) -> Path:
    """course_zip's files (a file first, deflated), with bytes at offsets (from each header's
    start) of the first member's local header and central directory entry replaced: the
    flags (2 bytes at 6 and 8) or the compression method (at 8 and 10)."""
    with zipfile.ZipFile(course_zip) as z:
        files = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    data = bytearray(path.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    for (local_at, central_at), value in at.items():
        data[local + local_at : local + local_at + 2] = value
        data[central + central_at : central + central_at + 2] = value
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("at", "said"),
    [
        ({(6, 8): b"\x01\x00"}, "is encrypted (password-protected)"),
        ({(8, 10): b"\x09\x00"}, "is compressed with method 9 (deflate64)"),
    ],
    ids=["encrypted", "deflate64"],
)
def test_a_member_zipfile_cannot_unpack_is_named_and_leaves_nothing(
    course_zip, tmp_path, capsys, at, said
):
    bad = _patched_member(course_zip, tmp_path / "bad.zip", at)
    with zipfile.ZipFile(bad) as z:
        first = z.infolist()[0].filename
    dest = tmp_path / "dest"
    assert main(["data", "download", str(dest), "--zip", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}: member {first} {said}" in err[0], err
    assert not dest.exists()
