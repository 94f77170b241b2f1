"""The two private library APIs memory relies on, each wrapped here and only here.

Each is pinned by `tests/memory/test_private_apis.py`, which fails loudly (naming
what moved) when a new Python or chromadb changes it; the wrappers themselves
raise `RuntimeError` rather than silently doing nothing.

- `threading._register_atexit` (CPython >= 3.9): run a hook at exit *before* the
  interpreter joins threads and shuts executors down, which a last flush of the
  memory writer still needs (opening the store uses an executor).
- chromadb's `Client._admin_client` and `FastAPI._session`: an HTTP client's
  connection pools, which `Client.close()` never closes (chromadb 1.x).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def before_threads_stop(hook: Callable[[], None]) -> None:
    """Run `hook` at interpreter exit, before non-daemon threads and executors stop."""
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        raise RuntimeError("threading._register_atexit is gone from this Python; "
                           "mirador.memory.private_apis needs another exit hook")
    register(hook)


def http_sessions(client: Any) -> list[Any]:
    """The HTTP connection pools (httpx clients) of a chromadb client and its admin
    client; none for a local (`PersistentClient`) one."""
    from chromadb.api.fastapi import FastAPI

    try:
        parts = (client._server, client._admin_client._server)
    except AttributeError as exc:
        raise RuntimeError(f"chromadb's Client no longer has {exc.name}; update "
                           "mirador.memory.private_apis.http_sessions") from exc
    sessions = {id(p._session): p._session for p in parts if isinstance(p, FastAPI)}
    return list(sessions.values())


def close_client(client: Any) -> None:
    """Close a chromadb client and, for an HTTP one, the pools chromadb leaves open."""
    for session in http_sessions(client):
        session.close()
    client.close()
