"""What the server lets in: how many answers at once, how big a body, who and from where.

`StreamGate` runs at most `max_active` answers at once and lets `max_queued` more
wait; the next one is refused at once with 503 and Retry-After, never left hanging.
`Guard` is plain ASGI middleware in front of everything: a body-size limit, the
bearer token, and the host and origin checks that keep a web page on another
site (or a DNS-rebinding trick) from driving a loopback server through the browser.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mirador.errors import ConfigError
from mirador.host import is_loopback
from mirador.server.errors import (
    ForbiddenError,
    HttpError,
    RequestTooLargeError,
    ServerBusyError,
    UnauthorizedError,
    error_body,
)
from mirador.settings import ServerConfig, Settings

# The web page itself holds no data, so it loads without a token; its API calls need one.
PUBLIC_PATHS = ("/", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/",)
RETRY_AFTER_SECONDS = 5


@dataclass
class StreamGate:
    """At most `max_active` answers run at once; up to `max_queued` wait; the rest get 503."""

    max_active: int
    max_queued: int
    active: int = 0
    waiting: int = 0
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:  # created on the server's loop, at first use
            self._slots = asyncio.Semaphore(self.max_active)
        return self._slots

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if need be; ServerBusyError when the queue is full."""
        slots = self._semaphore()
        if slots.locked() and self.waiting >= self.max_queued:
            raise ServerBusyError(
                f"the server is busy: {self.active} answers running and {self.waiting} waiting "
                f"(server.max_queued is {self.max_queued}); retry in {RETRY_AFTER_SECONDS} s",
                RETRY_AFTER_SECONDS)
        self.waiting += 1
        try:
            await slots.acquire()
        finally:
            self.waiting -= 1
        self.active += 1

    def release(self) -> None:
        self.active -= 1
        self._semaphore().release()


def api_token(settings: Settings) -> str | None:
    """The bearer token: server.api_token, else $MIRADOR_API_TOKEN, else none."""
    return settings.config.server.api_token or settings.env.get("MIRADOR_API_TOKEN") or None


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"binding to {host} would let other machines reach Mirador, so it needs an API "
            "token: set server.api_token in config.yaml or MIRADOR_API_TOKEN, "
            "or bind to 127.0.0.1")


@dataclass(frozen=True)
class GuardPolicy:
    token: str | None
    max_body: int
    loopback_only: bool  # bound to loopback: only loopback Host headers are served
    cors_origins: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: ServerConfig, token: str | None) -> GuardPolicy:
        return cls(token=token, max_body=cfg.max_request_bytes,
                   loopback_only=is_loopback(cfg.host), cors_origins=tuple(cfg.cors_origins))


class Guard:
    """ASGI middleware: host, origin, token and body size, checked before any route runs."""

    def __init__(self, app: Any, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        try:
            self._check(scope, headers)
        except HttpError as exc:
            await _send_error(scope, send, exc)
            return
        if scope["path"].startswith("/api/") and "json" not in headers.get("content-type", ""):
            scope = _as_json(scope)  # Ollama reads any body as JSON; curl users rely on it
        await self.app(scope, _limited(receive, self.policy.max_body), send)

    def _check(self, scope: dict, headers: dict[str, str]) -> None:
        host = headers.get("host", "")
        if self.policy.loopback_only and not is_loopback(_hostname(host)):
            raise ForbiddenError(f"host '{host}' is not served: this server listens on loopback "
                                 "only; use http://127.0.0.1 or http://localhost")
        origin = headers.get("origin")
        if origin and not self._origin_allowed(origin, host):
            raise ForbiddenError(f"origin '{origin}' may not call this server; add it to "
                                 "server.cors_origins in config.yaml to allow it")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.policy.max_body:
            raise _too_large(self.policy.max_body)
        if self.policy.token and not _public(scope["path"]):
            _check_token(headers.get("authorization", ""), self.policy.token)

    def _origin_allowed(self, origin: str, host: str) -> bool:
        if origin in self.policy.cors_origins or "*" in self.policy.cors_origins:
            return True
        return urlsplit(origin).netloc == host  # the server's own page


def _check_token(header: str, token: str) -> None:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise UnauthorizedError("this server needs an API token: send the header "
                                "'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise UnauthorizedError("the API token is wrong; use the one in server.api_token "
                                "or MIRADOR_API_TOKEN")


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"the request body is over {limit} bytes "
                                "(server.max_request_bytes); send less")


def _limited(receive: Any, limit: int) -> Any:
    """`receive`, raising RequestTooLargeError once the body passes `limit` bytes."""
    seen = 0

    async def receive_limited() -> dict:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
        return dict(message)

    return receive_limited


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _as_json(scope: dict) -> dict:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def _hostname(host: str) -> str:
    return urlsplit(f"//{host}").hostname or host


async def _send_error(scope: dict, send: Any, exc: HttpError) -> None:
    body = json.dumps(error_body(scope["path"], str(exc), exc.kind)).encode()
    headers: Iterable[tuple[str, str]] = [("content-type", "application/json"),
                                          ("content-length", str(len(body))),
                                          *exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status,
                "headers": [(k.encode(), v.encode()) for k, v in headers]})
    await send({"type": "http.response.body", "body": body})
