"""The private library APIs memory relies on (`mirador.memory.private_apis`): these fail
loudly, naming what moved, when a new Python or chromadb changes them."""

from __future__ import annotations

import subprocess
import sys
import threading

import chromadb
import httpx
import pytest
from chromadb.config import Settings as ChromaSettings

from mirador.memory.private_apis import before_threads_stop, close_client, http_sessions
from tests.memory.test_server import chroma_server  # noqa: F401  (a fixture: `chroma run`)

QUIET = ChromaSettings(anonymized_telemetry=False)


def test_pythons_private_exit_hook_is_still_there() -> None:
    assert callable(getattr(threading, "_register_atexit", None)), \
        "threading._register_atexit is gone: mirador.memory.private_apis needs a new exit hook"


def test_the_exit_hook_runs_while_executors_still_work() -> None:
    """What memory's last flush needs: at exit, an executor can still run work."""
    script = (
        "import concurrent.futures\n"
        "from mirador.memory.private_apis import before_threads_stop\n"
        "def flush():\n"
        "    with concurrent.futures.ThreadPoolExecutor(1) as pool:\n"
        "        print(pool.submit(lambda: 'flushed at exit').result())\n"
        "before_threads_stop(flush)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "flushed at exit"


def test_without_the_exit_hook_the_wrapper_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(threading, "_register_atexit")
    with pytest.raises(RuntimeError, match="_register_atexit is gone"):
        before_threads_stop(lambda: None)


def test_a_local_client_has_no_http_pools(tmp_path: object) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path), settings=QUIET)
    assert http_sessions(client) == []  # reads _server and _admin_client: they exist
    close_client(client)


def test_an_http_clients_pools_are_found_and_closed(chroma_server: int) -> None:  # noqa: F811
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server, settings=QUIET)
    sessions = http_sessions(client)
    assert sessions and all(isinstance(s, httpx.Client) for s in sessions)
    assert all(not s.is_closed for s in sessions)
    close_client(client)
    assert all(s.is_closed for s in sessions)


def test_a_client_without_the_private_parts_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no longer has"):
        http_sessions(object())
