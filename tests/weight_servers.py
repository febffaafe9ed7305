"""Loopback stand-ins for where the libraries download weights from: the Hugging Face hub
(what timm's hub client asks of ``$HF_ENDPOINT``) and a plain file server (torchvision's
download.pytorch.org). Each serves files from a dict and counts the requests."""

from __future__ import annotations

import hashlib
import http.server
import threading
from contextlib import contextmanager


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []
    commit = "0" * 40

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, body: bool) -> None:
        path = self.path.split("?")[0]
        # the hub's form: /<org>/<repo>/resolve/<revision>/<file>
        if "/resolve/" in path:
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            path = f"/{repo}/{rest.split('/', 1)[1]}"
        data = self.files.get(path)
        self.hits.append(f"{self.command} {self.path}")
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", self.commit)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)


@contextmanager
def serve(files: dict[str, bytes]):
    """A server on 127.0.0.1 answering GET/HEAD for files ({"/path": bytes}, hub paths as
    "/<org>/<repo>/<file>"); yields (base URL, the list of requests)."""
    handler = type("Handler", (_Handler,), {"files": files, "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    finally:
        server.shutdown()
        server.server_close()
