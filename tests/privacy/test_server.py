"""Forgetting with `mirador serve` running on the same home, as a real process: the CLI
goes through the server, the server's forget erases every file (journals included), and
the server's memory search keeps answering (no 500) afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.privacy.conftest import CHROMA, MARKER, ONE_STAGE, files_with, ids, mirador
from tests.support.net import free_port, wait_healthy


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[str]:
    """`mirador serve` on the told home; its base URL."""
    port = free_port()
    (home / "config.yaml").write_text(ONE_STAGE + f"server: {{port: {port}}}\n")
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen([sys.executable, "-m", "mirador", "serve", "--log-level",
                                   "warning"], env={**os.environ, "MIRADOR_HOME": str(home)},
                                  stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert "Traceback" not in log.read_text()



def _search(url: str, text: str) -> list[str]:
    reply = httpx.get(f"{url}/mirador/memory/search", params={"q": text}, timeout=60)
    assert reply.status_code == 200, reply.text
    return [m["id"] for m in reply.json()["memories"]]


def test_cli_forget_while_the_server_runs_keeps_its_search_working(home: Path,
                                                                   served: str) -> None:
    secret_id, other_id = ids(home)
    assert secret_id in _search(served, "my locker code")
    result = mirador(home, "memory", "forget", secret_id)
    assert result.returncode == 0, result.stderr
    assert secret_id not in _search(served, "my locker code")
    assert other_id in _search(served, "a name for a grey cat")
    assert files_with(home, MARKER, skip=[CHROMA]) == []
    reply = httpx.post(f"{served}/mirador/ask", timeout=300,  # the server writes again
                       json={"query": "What is a good name for a dog?", "stream": False})
    assert reply.status_code == 200, reply.text
    assert files_with(home, MARKER, skip=[CHROMA]) == []  # its live copies were erased too
    all_gone = mirador(home, "memory", "forget", "--all", "--yes")
    assert all_gone.returncode == 0, all_gone.stderr
    assert _search(served, "a name for a grey cat") == []


def test_server_forget_erases_the_session_journal_and_the_ratings_text(home: Path,
                                                                       served: str) -> None:
    secret_id, _ = ids(home)
    reply = httpx.delete(f"{served}/mirador/memory/{secret_id}", timeout=120)
    assert reply.status_code == 200, reply.text
    assert files_with(home, MARKER, skip=[CHROMA]) == []
    assert httpx.delete(f"{served}/mirador/memory/{secret_id}", timeout=60).status_code == 404
