"""The CLI's side of the server: find a running Mirador and stream an answer from it.

`find_server` asks 127.0.0.1 on the configured port, with a short timeout, for
its health; it uses the server only if that server runs on the same Mirador home
(so a test's or another user's home never borrows the wrong server). Events come
back as the same dataclasses the orchestrator yields, so the same renderers show them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirador.errors import BackendUnavailableError, MiradorError
from mirador.orchestration.events import (
    Ack,
    Done,
    ErrorEvent,
    Event,
    StageAnswer,
    StageEnd,
    StageStart,
    Token,
    ToolCall,
    ToolResult,
)
from mirador.orchestration.hooks import Query
from mirador.settings import Settings
from mirador.warmstart import listening

if TYPE_CHECKING:
    import httpx

PROBE_TIMEOUT = 0.3
_EVENTS: dict[str, type[Any]] = {cls.type: cls
                                 for cls in (Ack, StageStart, Token, ToolCall, ToolResult,
                                             ErrorEvent, StageEnd, Done)}


@dataclass(frozen=True)
class ServerClient:
    base_url: str
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def find_server(settings: Settings, timeout: float = PROBE_TIMEOUT) -> ServerClient | None:
    """The Mirador server on this machine serving this home, if one is running."""
    if not listening(settings.config.server.port, timeout):
        return None  # nothing listens: no need to load an HTTP client to ask
    import httpx

    from mirador.server.limits import api_token

    client = ServerClient(f"http://127.0.0.1:{settings.config.server.port}", api_token(settings))
    try:
        reply = httpx.get(f"{client.base_url}/mirador/health", headers=client.headers,
                          timeout=timeout)
        health = reply.json() if reply.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(health, dict) or health.get("home_id") != home_id(settings.home):
        return None
    return client


def home_id(home: Path) -> str:
    """A fingerprint of a Mirador home: says which home a server serves without naming
    its path (which /mirador/health must not reveal)."""
    return hashlib.sha256(str(home.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def event_from_dict(data: dict[str, Any]) -> Event:
    """An event dict (as `to_dict()` made it) back into its dataclass."""
    cls = _EVENTS.get(data.get("type", ""))
    if cls is None:
        raise MiradorError(f"the server sent an unknown event type {data.get('type')!r}; "
                           "upgrade this client or the server so they match")
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k in known}
    if cls is Done:
        answers = values.get("answers", {})
        values["answers"] = {name: StageAnswer(**a) for name, a in answers.items()}
    if cls is ErrorEvent and values.get("stage") is None:  # a server-side failure, not a stage's
        values.update(stage="", model="")
    event: Event = cls(**values)
    return event


async def stream_answer(client: ServerClient, query: Query,
                        **options: Any) -> AsyncIterator[Event]:
    """Ask the server and yield its events as they arrive."""
    body = {"query": query.text, "namespace": query.namespace, "session_id": query.session_id,
            "history": [{"role": m.role, "content": m.content} for m in query.history],
            **{k: v for k, v in options.items() if v is not None}}
    url = f"{client.base_url}/mirador/ask"
    import httpx

    timeout = httpx.Timeout(10.0, read=None)
    try:
        async with httpx.AsyncClient(timeout=timeout) as http, \
                http.stream("POST", url, json=body, headers=client.headers) as reply:
            if reply.status_code != 200:
                raise MiradorError(_error_message(await reply.aread(), reply.status_code))
            async for data in _sse_data(reply):
                yield event_from_dict(json.loads(data))
    except httpx.HTTPError as exc:
        raise BackendUnavailableError(f"the Mirador server at {client.base_url} stopped "
                                      f"answering ({exc}); run again with --local") from None


async def _sse_data(reply: httpx.Response) -> AsyncIterator[str]:
    data: list[str] = []
    async for line in reply.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield "\n".join(data)
            data = []


def _error_message(raw: bytes, status: int) -> str:
    try:
        error = json.loads(raw)["error"]
        return str(error["message"] if isinstance(error, dict) else error)
    except (ValueError, KeyError, TypeError):
        return f"the Mirador server answered {status}; run again with --local"
