"""Waiting on real servers in tests: a free loopback port, and polling until a condition
(or a server's health) holds. One copy, for every test that starts a server."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], seconds: float = 10.0,
             every: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or `seconds` pass (its last answer)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_healthy(url: str, server: subprocess.Popen[Any], log: Path | None = None,
                 seconds: float = 120.0, path: str = "/mirador/health",
                 name: str = "mirador serve") -> None:
    """Wait until the server process at `url` (`mirador serve` unless `name` says otherwise)
    answers 200 on `path`; fail with its log if it exits or never does."""
    def healthy() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"{name} exited with {server.returncode}: "
                                 f"{log.read_text() if log else ''}")
        try:
            return httpx.get(f"{url}{path}", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_for(healthy, seconds, every=0.2):
        raise AssertionError(f"{name} did not start within {seconds:.0f} s: "
                             f"{log.read_text() if log else ''}")
