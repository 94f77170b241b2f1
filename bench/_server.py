"""Start-up shared by the bench scripts that time a real `mirador serve`: a free loopback
port, and a server process started in a Mirador home and waited on until its model is loaded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

MIRADOR = str(Path(sys.executable).parent / "mirador")
READY_SECONDS = 180


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _loaded(port: int) -> bool:
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/mirador/health", timeout=1).json()
        return bool(health["loaded"])
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    """`mirador serve` in `home` (whose config sets `port`), once its health says a model is
    loaded; exits the bench with a message if that takes over READY_SECONDS."""
    env = {**os.environ, "MIRADOR_HOME": str(home)}
    process = subprocess.Popen([MIRADOR, "serve", "--log-level", "warning"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if _loaded(port):
            return process
        time.sleep(0.2)
    process.terminate()
    process.wait(timeout=60)
    raise SystemExit(f"mirador serve did not become healthy in {READY_SECONDS} s")


@contextlib.contextmanager
def serving(home: Path, port: int) -> Iterator[str]:
    """A running `mirador serve` for the block; yields its base URL and stops it after."""
    server = start_server(home, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)
