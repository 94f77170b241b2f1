"""A local HTTP server that serves model files the way Hugging Face and plain hosts do.

`/OWNER/REPO/resolve/main/FILE` answers like huggingface.co: an unknown repository
is 401 with `X-Error-Code: RepoNotFound`, an unknown file 404 with
`EntryNotFound`, and a known file a 302 to a CDN URL on the same server, carrying
`X-Linked-Etag` (the file's SHA-256, quoted), `X-Linked-Size` and `X-Repo-Commit`.
The CDN (`/cdn/SHA?X-Amz-...`) and plain URLs (`/files/NAME`, with `/moved/NAME`
redirecting there relatively) serve the bytes with `Accept-Ranges`, `ETag` and
206 partial content for `Range: bytes=N-`.

Knobs for tests: `delay` seconds between `chunk`-byte writes (a slow link),
`honour_ranges=False` (a server that always starts again), `wrong_sha` (a
source that announces the wrong SHA-256), `cut_after` (the connection drops
after that many bytes of a response). `requests` records (path, Range header).

    with FileServer(repos={"me/tiny": {"tiny.gguf": path}}) as server:
        server.url  # -> http://127.0.0.1:PORT
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.support.loopback import LoopbackHTTPServer


@dataclass
class FileServer(LoopbackHTTPServer):
    repos: dict[str, dict[str, Path]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    delay: float = 0.0
    chunk: int = 1 << 16
    honour_ranges: bool = True
    wrong_sha: bool = False
    cut_after: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def _bind(self) -> ThreadingHTTPServer:
        return _Server(("127.0.0.1", 0), type("Handler", (_Handler,), {"app": self}))

    def by_sha(self, sha: str) -> Path | None:
        for files in self.repos.values():
            for path in files.values():
                if sha256_of(path) == sha:
                    return path
        return None

    def ranges(self) -> list[str]:
        """The Range headers of the requests that sent one."""
        return [r for _, r in self.requests if r]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away
            super().handle_error(request, client_address)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: FileServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._route(body=False)

    def do_GET(self) -> None:
        self._route(body=True)

    def _route(self, body: bool) -> None:
        self.app.requests.append((self.path, self.headers.get("Range")))
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2:4] == ["resolve", "main"]:
            self._resolve(f"{parts[0]}/{parts[1]}", "/".join(parts[4:]))
        elif len(parts) == 2 and parts[0] == "cdn" and self.app.by_sha(parts[1]):
            path_ = self.app.by_sha(parts[1])
            assert path_ is not None
            self._file(path_, f'"{parts[1]}"', body)
        elif len(parts) == 2 and parts[0] == "files" and parts[1] in self.app.files:
            file = self.app.files[parts[1]]
            self._file(file, f'"{hashlib.md5(file.read_bytes()).hexdigest()}"', body)
        elif len(parts) == 2 and parts[0] == "moved":
            self._redirect(f"../files/{parts[1]}", {})
        elif path == "/page.html":
            self._send(200, b"<!doctype html><title>model</title>", "text/html; charset=utf-8")
        else:
            self._send(404, b"Not Found", "text/plain")

    def _resolve(self, repo: str, name: str) -> None:
        files = self.app.repos.get(repo)
        if files is None:
            self._send(401, b"Repository not found", "text/plain",
                       {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return
        if name not in files:
            self._send(404, b"Entry not found", "text/plain",
                       {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})
            return
        sha = sha256_of(files[name])
        announced = "0" * 64 if self.app.wrong_sha else sha
        self._redirect(f"{self.app.url}/cdn/{sha}?X-Amz-Signature=abc&X-Amz-Expires=3600", {
            "X-Linked-Etag": f'"{announced}"', "X-Linked-Size": str(files[name].stat().st_size),
            "X-Repo-Commit": "3" * 40, "ETag": f'W/"{"1" * 40}"'})

    def _redirect(self, location: str, headers: dict[str, str]) -> None:
        self._send(302, b"", "text/plain", {"Location": location, **headers})

    def _file(self, path: Path, etag: str, body: bool) -> None:
        data = path.read_bytes()
        start = self._range_start(len(data))
        if start is not None and start >= len(data):
            self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
            return
        status = 206 if start is not None else 200
        part = data[start or 0:]
        self.send_response(status)
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "ETag": etag, "Content-Length": str(len(part))}
        if start is not None:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self._write_slowly(part)

    def _range_start(self, size: int) -> int | None:
        header = self.headers.get("Range", "")
        if not (self.app.honour_ranges and header.startswith("bytes=") and header.endswith("-")):
            return None
        return int(header[6:-1])

    def _write_slowly(self, data: bytes) -> None:
        app = self.app
        limit = len(data) if app.cut_after is None else min(app.cut_after, len(data))
        try:
            for offset in range(0, limit, app.chunk):
                self.wfile.write(data[offset:min(offset + app.chunk, limit)])
                self.wfile.flush()
                if app.delay:
                    time.sleep(app.delay)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (Ctrl-C): nothing to finish
        if limit < len(data):
            self.close_connection = True

    def _send(self, status: int, data: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
