"""The life cycle shared by the test suite's stand-in HTTP servers (FakeOllama, FileServer):
a stdlib server bound to a free port on 127.0.0.1, serving from a daemon thread."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


class LoopbackHTTPServer:
    """Start, stop, `with` and `url` for a stand-in server; a subclass says how to bind."""

    _httpd: ThreadingHTTPServer | None = None

    def _bind(self) -> ThreadingHTTPServer:
        """A server on ("127.0.0.1", 0) whose handler reaches this object."""
        raise NotImplementedError

    def start(self) -> str:
        self._httpd = self._bind()
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"
